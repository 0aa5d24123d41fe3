"""A labelled grid of source (lab) and target (wild) frames of a synthetic data root: `docs/contact_sheet.jpg`.

    python docs/make_contact_sheet.py                                  # reads data/synthetic
    python docs/make_contact_sheet.py --root /tmp/world --out /tmp/sheet.jpg --cols 6

Top: source frames (Human3.6M-like; tiles "S <subject> <action> c<camera>") with their GT 2D joints (`part`,
green). Bottom: target frames (3DPW-like; tiles "T <sequence> #<frame>", "2 p." for two people) with the
detector-noise keypoints of `poses2d` (red; missing joints are not drawn).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from utils.io import restricted_load

REPO = Path(__file__).resolve().parents[1]
TILE_HEIGHT = 300  # pixels; every frame is scaled to this height


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} ({what}) not found: make a synthetic world first, e.g. "
                                "`python -m datasets.synthetic --out data/synthetic --preset small`")
    return path


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """Draw `text` on a dark band at the top of a tile."""
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _tile(path: Path, points: np.ndarray, color: tuple[int, int, int], text: str) -> np.ndarray:
    """A BGR tile of height TILE_HEIGHT with the points [J, 3] (x, y, conf) drawn where conf > 0."""
    img = cv2.imread(str(_need(path, "a frame")))
    scale = TILE_HEIGHT / img.shape[0]
    img = cv2.resize(img, (round(img.shape[1] * scale), TILE_HEIGHT), interpolation=cv2.INTER_AREA)
    for x, y, c in points:
        if c > 0:
            cv2.circle(img, (round(x * scale), round(y * scale)), 3, color, -1, cv2.LINE_AA)
    return _label(img, text)


def source_tiles(root: Path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Frames of the lab domain spread over subjects, actions and cameras."""
    data = np.load(_need(root / "dataset_extras" / "h36m_train.npz", "source training npz"))
    clips = sorted({name.rsplit("_", 1)[0] for name in data["imgname"]})  # subject_action.camera
    picks = rng.choice(len(clips), size=min(count, len(clips)), replace=False)
    tiles = []
    for clip in sorted(clips[i] for i in picks):
        rows = np.flatnonzero(np.char.startswith(data["imgname"].astype(str), clip + "_"))
        row = rows[len(rows) // 2]
        name = str(data["imgname"][row])
        subject_action, camera = Path(name).stem.rsplit("_", 1)[0].split(".")
        tiles.append(_tile(root / "h36m" / name, data["part"][row], (0, 220, 0),
                           f"S {subject_action.replace('_', ' ')} c{camera[-3:]}"))
    return tiles


def target_tiles(root: Path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Frames of the wild domain spread over sequences and time."""
    seq_files = sorted(_need(root / "3dpw" / "sequenceFiles" / "test", "target sequences").glob("*.pkl"))
    tiles = []
    for k in range(count):
        seq = restricted_load(seq_files[k % len(seq_files)], "3DPW sequence file")  # numpy arrays and lists only
        n = len(seq["img_frame_ids"])
        t = int(rng.integers(n))
        points = np.concatenate([p[t].T for p in seq["poses2d"]])
        tiles.append(_tile(root / "3dpw" / "imageFiles" / seq["sequence"] / f"image_{t:05d}.jpg", points,
                           (0, 0, 230), f"T {seq['sequence'][-2:]} #{t}" + (" 2 p." if len(seq["poses"]) > 1 else "")))
    return tiles


def _header(text: str, width: int) -> np.ndarray:
    """A white band with a title."""
    band = np.full((34, width, 3), 255, np.uint8)
    cv2.putText(band, text, (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2, cv2.LINE_AA)
    return band


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    """Tiles of equal height in rows of `cols`, rows padded to the widest."""
    rows = [np.concatenate(tiles[i: i + cols], axis=1) for i in range(0, len(tiles), cols)]
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "synthetic", help="synthetic data root")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "contact_sheet.jpg", help="output JPEG")
    parser.add_argument("--cols", type=int, default=6, help="tiles per row")
    parser.add_argument("--rows", type=int, default=2, help="rows per domain")
    parser.add_argument("--seed", type=int, default=0, help="which frames are picked")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    src_tiles = source_tiles(args.root, args.cols * args.rows, rng)
    # as many portrait target tiles per row as fill the width of a source row
    tgt_cols = max(1, round(args.cols * src_tiles[0].shape[1] / target_tiles(args.root, 1, rng)[0].shape[1]))
    src = _grid(src_tiles, args.cols)
    tgt = _grid(target_tiles(args.root, tgt_cols * args.rows, rng), tgt_cols)
    width = max(src.shape[1], tgt.shape[1])
    parts = [_header("SOURCE: lab (Human3.6M-like) - fixed cameras, plain backgrounds, everyday actions", width), src,
             _header("TARGET: wild (3DPW-like) - hand-held camera, clutter, occluders, pairs, athletic motions",
                     width), tgt]
    sheet = np.concatenate([np.pad(g, ((0, 0), (0, width - g.shape[1]), (0, 0)), constant_values=255)
                            for g in parts])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
