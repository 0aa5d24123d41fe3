"""Frames shown per second of `dynaboa_webcam.py` on a 30 fps video, adaptation off, synchronous and asynchronous.

    python docs/measure_live_rate.py --frames 90 --repeats 2          # the table of docs/speed.md

Writes a 30 fps clip of a real photograph with a slow pan and zoom, then runs the
webcam program on it headless (`--no-display`, the committed model on the built-in assets) in a fresh process per
run, alternating the modes so that the load of a shared machine hits them alike, and reads the program's last log
line (frames shown per second, updates, and with `--async-adapt` updates per second and staleness).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.video_out import open_video

PHOTOS = REPO.parent / "shared" / "data" / "real_images"

MODES = {"no adapt": ["--no-adapt"], "synchronous": [], "asynchronous (process)": ["--async-adapt"],
         "asynchronous (thread)": ["--async-adapt", "--adapt-in", "thread"],
         "asynchronous (thread), --adapt-nice 10": ["--async-adapt", "--adapt-in", "thread", "--adapt-nice", "10"],
         "asynchronous (process), --realtime": ["--async-adapt", "--realtime"]}
LAST = re.compile(r"(\d+) frames at ([\d.]+) fps: (\d+) updated, (\d+) without a person(.*)")


def write_clip(path: Path, frames: int, fps: float = 30.0, size: tuple[int, int] = (480, 720)) -> Path:
    """`frames` frames of a window over the photograph zooming in by 10 % and drifting sideways (as
    `docs/make_batch_clips.py`), at `fps`."""
    photo = cv2.imread(str(PHOTOS / "lunge_pexels.jpg"))
    height, width = photo.shape[:2]
    with open_video(path, fps, size, order="bgr") as video:
        for i in range(frames):
            t = i / max(frames - 1, 1)
            w, h = width * (1.0 - 0.1 * t), height * (1.0 - 0.1 * t)
            x0, y0 = (width - w) * (0.25 + 0.5 * t), (height - h) / 2
            window = photo[int(y0):int(y0 + h), int(x0):int(x0 + w)]
            video.write(cv2.resize(window, size, interpolation=cv2.INTER_AREA))
    return path


def run_mode(clip: Path, extra: list[str]) -> str:
    """The webcam program's final log line on `clip` with the options `extra`."""
    cmd = [sys.executable, str(REPO / "dynaboa_webcam.py"), "--capture-mode", "video", "--video", str(clip),
           "--no-display", *extra]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    lines = [m.group(0) for m in map(LAST.search, out.stderr.splitlines()) if m]
    return lines[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90, help="frames of the clip (30 fps)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode (alternating)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", args.frames)
        for repeat in range(args.repeats):
            for mode in args.modes:
                line = run_mode(clip, MODES[mode])
                print(f"| {mode} | run {repeat + 1} | {line} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
