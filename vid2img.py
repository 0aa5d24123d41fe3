"""Extract the frames of videos as numbered images (`<out>/<video stem>/000001.png`, ...) plus `meta.json`.

The images are named as the original's ffmpeg call named them (`%06d.png` from `000001`), and the source frame rate,
frame count and size are recorded in `<out>/<stem>/meta.json`. Nothing happens at import (the original re-extracted
every video whenever another script imported it).

    python vid2img.py data/internet/dance.mp4                 # -> $INTERNET_ROOT/images/dance/000001.png ...
    python vid2img.py a.mp4 b.avi --out /tmp/frames --every 5  # frames 1, 6, 11, ... keep their numbers
    python vid2img.py day1/clip.mp4 day2/clip.mp4 --print-names  # clip, clip-2: each video has its own folder

Videos with the same file stem get their own folders (`clip`, `clip-2`, ... in command-line order), and a folder
that holds the frames of another video (its `meta.json` names another source) is refused, never mixed.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from config import DataPaths
from utils.video import META_NAME, VideoError, extract_frames, video_names

logger = logging.getLogger("vid2img")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Extract the frames of videos as numbered images.")
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder; frames go to OUT/<video stem>/ (default: $INTERNET_ROOT/images)")
    parser.add_argument("--every", type=int, default=1, help="keep every N-th frame (default: 1, all frames)")
    parser.add_argument("--ext", choices=("png", "jpg"), default="png", help="image format (default: png)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite frames that already exist")
    parser.add_argument("--print-names", action="store_true",
                        help="only print each video's frame-folder name, one a line, and exit")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error(f"--every must be >= 1, got {args.every}")
    return args



def other_source(frame_dir: Path, video: Path) -> str | None:
    """The source named by `frame_dir/meta.json` when it is another video than `video`, else None."""
    meta = frame_dir / META_NAME
    if not meta.is_file():
        return None
    recorded = json.loads(meta.read_text())
    source = recorded.get("source_abs", recorded.get("source"))
    if source is None or Path(source).resolve() == Path(video).resolve():
        return None
    return source


def main(argv: Sequence[str] | None = None) -> int:
    """Extract every video given; returns 1 if any of them could not be read, else 0."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    out_root = args.out if args.out is not None else DataPaths.from_root().internet_root / "images"
    names = video_names(args.videos)
    if args.print_names:
        print("\n".join(names))
        return 0
    failed = 0
    for video, name in zip(args.videos, names, strict=True):
        other = other_source(out_root / name, video)
        if other is not None and not args.overwrite:
            logger.error("%s holds the frames of %s, not of %s: nothing was changed; choose another --out, or "
                         "--overwrite to replace them", out_root / name, other, video)
            failed += 1
            continue
        if other is not None:  # --overwrite: none of the other video's frames may stay
            shutil.rmtree(out_root / name)
        try:
            result = extract_frames(video, out_root / name, args.every, args.ext, args.overwrite)
        except (FileNotFoundError, VideoError) as err:
            logger.error("%s", err)
            failed += 1
            continue
        logger.info("%s: %d frames decoded, %d written, %d already there -> %s", video, result.frames_read,
                    result.frames_written, result.frames_skipped, result.out_dir)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
