"""Short test clips for the batch command: real photographs with a slow pan and zoom, as H.264 MP4.

    python docs/make_batch_clips.py --out /tmp/clips --frames 6     # lunge.mp4, group.mp4, fencing.mp4

Each clip is a window over the photograph (`../shared/data/real_images/`) that zooms from 100 % to 90 % of the
photo and drifts sideways over `--frames` frames at 10 fps, resized to a fixed size (the people stay large enough for
`run_on_internet.sh`'s smallest-person rule).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.video_out import open_video

PHOTOS = REPO.parent / "shared" / "data" / "real_images"
CLIPS = {"lunge": ("lunge_pexels.jpg", (480, 720)), "group": ("group_unsplash.jpg", (960, 640)),
         "fencing": ("fencing_3dpw_crop.jpg", (512, 512))}  # name: (photo, output width x height)


def clip_frames(photo: np.ndarray, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """`frames` RGB frames of `size` (width, height): a window zooming in by 10 % and panning 5 % of the width."""
    height, width = photo.shape[:2]
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        scale = 1.0 - 0.1 * t
        w, h = width * scale, height * scale
        x0, y0 = (width - w) * (0.5 + 0.5 * (t - 0.5)), (height - h) / 2
        window = photo[int(round(y0)):int(round(y0 + h)), int(round(x0)):int(round(x0 + w))]
        out.append(cv2.resize(window, size, interpolation=cv2.INTER_AREA if scale * width > size[0]
                              else cv2.INTER_CUBIC))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the clips")
    parser.add_argument("--frames", type=int, default=6, help="frames per clip")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (photo_name, size) in CLIPS.items():
        photo = cv2.imread(str(PHOTOS / photo_name))
        if photo is None:
            print(f"make_batch_clips: cannot read {PHOTOS / photo_name}", file=sys.stderr)
            return 1
        with open_video(args.out / f"{name}.mp4", 10.0, size, order="bgr") as video:
            for frame in clip_frames(photo, args.frames, size):
                video.write(frame)
        print(args.out / f"{name}.mp4")
    return 0


if __name__ == "__main__":
    sys.exit(main())
