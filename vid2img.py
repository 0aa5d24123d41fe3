"""Extract the frames of videos as numbered images (`<out>/<video stem>/000001.png`, ...) plus `meta.json`.

The images are named as the original's ffmpeg call named them (`%06d.png` from `000001`), and the source frame rate,
frame count and size are recorded in `<out>/<stem>/meta.json`. Nothing happens at import (the original re-extracted
every video whenever another script imported it).

    python vid2img.py data/internet/dance.mp4                 # -> $INTERNET_ROOT/images/dance/000001.png ...
    python vid2img.py a.mp4 b.avi --out /tmp/frames --every 5  # frames 1, 6, 11, ... keep their numbers
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from config import DataPaths
from utils.video import VideoError, extract_frames

logger = logging.getLogger("vid2img")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Extract the frames of videos as numbered images.")
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder; frames go to OUT/<video stem>/ (default: $INTERNET_ROOT/images)")
    parser.add_argument("--every", type=int, default=1, help="keep every N-th frame (default: 1, all frames)")
    parser.add_argument("--ext", choices=("png", "jpg"), default="png", help="image format (default: png)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite frames that already exist")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error(f"--every must be >= 1, got {args.every}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Extract every video given; returns 1 if any of them could not be read, else 0."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    out_root = args.out if args.out is not None else DataPaths.from_root().internet_root / "images"
    failed = 0
    for video in args.videos:
        try:
            result = extract_frames(video, out_root / video.stem, args.every, args.ext, args.overwrite)
        except (FileNotFoundError, VideoError) as err:
            logger.error("%s", err)
            failed += 1
            continue
        logger.info("%s: %d frames decoded, %d written, %d already there -> %s", video, result.frames_read,
                    result.frames_written, result.frames_skipped, result.out_dir)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
