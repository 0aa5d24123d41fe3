"""The internet-video stream from `<INTERNET_ROOT>/<video>_<k>.npz` (written by `process_data.py --dataset internet`).

Files are read in sorted order (the original's glob order depended on the filesystem, docs/method.md §11 item 15), each
file is one person track, and keypoints are copied before they are transformed (the original transformed them in
place, docs/method.md §11 item 3). There is no ground truth.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from config import REPO_ROOT
from datasets.base import StreamItem, crop_item
from datasets.runrecord import RunError, one_line, python_command

FILE_PATTERN = re.compile(r"^(?P<video>.+)_(?P<track>\d+)\.npz$")
WORLD_KEY = "world_landmarks"  # optional [N, 33, 4]: the detector's 3D landmarks (models/teacher3d.py)


def list_track_files(root: Path) -> list[Path]:
    """`<video>_<k>.npz` files sorted by (video, k)."""
    files = [p for p in Path(root).glob("*.npz") if FILE_PATTERN.match(p.name)] if Path(root).is_dir() else []
    if not files:
        raise RunError(
            f"no <video>_<track>.npz files in {root}: extract frames with `python vid2img.py VIDEO --out "
            f"{root}/images`, detect 2D keypoints, then run `python process_data.py --dataset internet --root {root}`")

    def key(p: Path) -> tuple[str, int]:
        m = FILE_PATTERN.match(p.name)
        return m["video"], int(m["track"])

    return sorted(files, key=key)


class InternetStream(torch.utils.data.Dataset):
    """Every person track of every video under `root`, one after the other."""

    def __init__(self, root: Path, img_res: int) -> None:
        self.root, self.img_res = Path(root), img_res
        self.items: list[tuple[str, np.ndarray, float, np.ndarray, tuple[str, int], int]] = []
        self.landmarks: list[np.ndarray | None] = []  # per item: [33, 4] world landmarks, if the track file has them
        for path in list_track_files(self.root):
            m = FILE_PATTERN.match(path.name)
            try:
                with np.load(path) as data:
                    frames = data["frame_ids"] if "frame_ids" in data else np.arange(len(data["imgname"]))
                    names, centers, scales, parts = data["imgname"], data["center"], data["scale"], data["part"]
                    world = data[WORLD_KEY] if WORLD_KEY in data else None
            except Exception as err:  # a truncated zip, a missing key, a foreign file: name it
                fix = python_command(REPO_ROOT / "process_data.py",
                                     ["--dataset", "internet", "--root", str(self.root), "--overwrite"])
                raise RunError(f"{path} is not a readable track file ({type(err).__name__}: {one_line(err)}); "
                               f"regenerate the tracks (with the --min-size used before, if not the default): {fix}"
                               ) from err
            for i in range(len(names)):
                self.landmarks.append(None if world is None else world[i].astype(np.float32))
                self.items.append((str(names[i]), centers[i].astype(np.float64), float(scales[i]), parts[i].copy(),
                                   (m["video"], int(m["track"])), int(frames[i])))

    @property
    def tracks(self) -> list[tuple[str, int]]:
        """(video, track id) of every item, in stream order (as `PW3DStream.tracks`)."""
        return [item[4] for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> StreamItem:
        imgname, center, scale, part, track, frame = self.items[index]
        try:
            image, kp, size = crop_item(self.root, imgname, center, scale, part, self.img_res)
        except (FileNotFoundError, ValueError) as err:
            raise RunError(f"frame {frame} of track {track[0]}_{track[1]} ({self.root / imgname}) cannot be read: "
                           f"{one_line(err)}") from err
        world = self.landmarks[index]
        return StreamItem(index, image, kp, track, imgname, center, scale, size, frame, {},
                          None if world is None else torch.from_numpy(world))
