"""Many internet videos in one command: each video adapted from the base model on its own, in parallel (local
processes or a dask cluster, `pipelines.cluster`), by the single-video pipeline (`run_on_internet.sh VIDEO`: frames,
keypoints, tracks, DynaBOA, exports), with one progress bar over the batch and a summary table.

    bash run_on_internet.sh --batch videos/ --jobs 2                # a folder, or a text file with one path a line

Each video has its own experiment `<out>/<name>/videos/<video>/` and log `<out>/<name>/logs/<video>.log`; a finished
one is kept (its `batch.json`), an unfinished one continues (`--resume`), so rerunning the command completes a batch.
The summary (`summary.md`, `summary.json`): video, frames, people, seconds per frame (the video's whole pipeline),
status with a one-line reason for failures.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from datasets.experiment import is_experiment
from pipelines.cluster import BACKENDS, Task, run_tasks
from utils.video import video_names

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_videos(source: Path) -> list[Path]:
    """The videos of a folder (by suffix, sorted) or of a text file (one path a line, `#` comments, relative to it)."""
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if source.is_file() and source.suffix.lower() not in VIDEO_SUFFIXES:
        lines = [ln.strip() for ln in source.read_text().splitlines()]
        return [(source.parent / ln) if not Path(ln).is_absolute() else Path(ln)
                for ln in lines if ln and not ln.startswith("#")]
    raise ValueError(f"--batch: {source} is neither a folder nor a list of videos (one path a line)")



def one_line_reason(log: Path) -> str:
    """The last line of the log that names an error (else its last line), shortened to 120 characters."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    errors = [ln for ln in lines if any(w in ln.lower() for w in ("error", "refused", "missing", "cannot", "no "))]
    text = (errors or lines or ["no output"])[-1]
    return text if len(text) <= 120 else text[:117] + "..."


def video_stats(exp: Path) -> dict:
    """Frames (extracted images), people (tracks adapted) of a finished video experiment."""
    frames = sum(1 for d in (exp / "input" / "images").iterdir() if d.is_dir()
                 for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    with open(exp / "frames.csv", newline="") as fh:
        people = len({row["track"] for row in csv.DictReader(fh)})
    return {"frames": frames, "people": people}


def process_video(script: str, video: Path, exp: Path, log: Path, options: Sequence[str], extra: Sequence[str]
                  ) -> None:
    """One video through `bash script VIDEO` into `exp` (continued when it exists; kept when finished); on success
    its summary row goes to `exp/batch.json`, else the log says why."""
    if (exp / "batch.json").exists():
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    command = ["bash", script, str(video), "--out", str(exp.parent), "--expname", exp.name, *options,
               *(["--resume"] if is_experiment(exp) else []), "--", *extra]
    start = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    seconds = time.perf_counter() - start
    if code == 0 and (exp / "metrics.json").exists():
        row = {"video": exp.name, **video_stats(exp), "seconds": round(seconds, 1)}
        row["seconds_per_frame"] = round(seconds / max(row["frames"], 1), 3)
        (exp / "batch.json").write_text(json.dumps(row))


def format_table(rows: Sequence[dict]) -> str:
    """The summary as a Markdown table."""
    out = ["| video | frames | people | s / frame | status |", "|---|---:|---:|---:|---|"]
    for r in rows:
        spf = "" if r.get("seconds_per_frame") is None else f"{r['seconds_per_frame']:.2f}"
        out.append(f"| {r['video']} | {r['frames']} | {r['people']} | {spf} | {r['status']} |")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a folder of videos or a text file listing them")
    parser.add_argument("--script", required=True, help="the single-video command (run_on_internet.sh)")
    parser.add_argument("--batch-dir", type=Path, required=True, help="where the videos' experiments go")
    parser.add_argument("--jobs", type=int, default=2, help="videos at a time (local processes or dask workers)")
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="local processes or a dask cluster")
    parser.add_argument("--scheduler", default="", help="dask scheduler address; empty: a local cluster")
    parser.add_argument("--option", action="append", default=[], help="an option for every video's command")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)  # after `--`: options of dynaboa.py, for every video
    args = parser.parse_args(argv[:cut])
    args.extra = argv[cut + 1:]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the batch; exit status 1 when a video failed."""
    from tqdm import tqdm

    args = parse_args(argv)
    try:
        videos = list_videos(args.source)
    except ValueError as err:
        print(f"run_on_internet.sh: {err}", file=sys.stderr)
        return 2
    missing = [str(v) for v in videos if not v.is_file()]
    if not videos or missing:
        print(f"run_on_internet.sh --batch: no video in {args.source}" if not videos else
              f"run_on_internet.sh --batch: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))  # each video's torch threads: cores / jobs
    # after Ctrl-C, joblib's resource tracker warns of the semaphores of the workers it lost: not the user's concern
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
    extra = [*args.extra, *([] if "--threads" in args.extra else ["--threads", str(threads)])]
    names = video_names(videos)
    tasks = [Task(name, process_video, (args.script, video.resolve(), (args.batch_dir / "videos" / name).resolve(),
                                        (args.batch_dir / "logs" / f"{name}.log").resolve(), args.option, extra))
             for name, video in zip(names, videos, strict=True)]
    start = time.perf_counter()
    with tqdm(total=len(tasks), desc="videos", unit="video") as bar:
        outcome = run_tasks(tasks, args.backend, args.jobs, args.scheduler, on_done=lambda *_: bar.update())
    rows = [results_row(name, outcome[name], args.batch_dir) for name in names]
    table = format_table(rows)
    (args.batch_dir / "summary.md").write_text(table + "\n")
    (args.batch_dir / "summary.json").write_text(json.dumps(rows, indent=1))
    print(table)
    print(f"{len(rows)} videos in {time.perf_counter() - start:.1f} s with {args.jobs} jobs ({args.backend}); "
          f"experiments under {args.batch_dir / 'videos'}")
    return 1 if any(r["status"].startswith("failed") for r in rows) else 0


def results_row(name: str, error: BaseException | None, batch_dir: Path) -> dict:
    """A video's row: from its batch.json, or the failure that ended its task."""
    done = batch_dir / "videos" / name / "batch.json"
    if error is None and done.exists():
        row = json.loads(done.read_text())
        return {k: row[k] for k in ("video", "frames", "people", "seconds_per_frame")} | {"status": "done"}
    reason = f"{type(error).__name__}: {error}" if error is not None else one_line_reason(
        batch_dir / "logs" / f"{name}.log")
    return {"video": name, "frames": 0, "people": 0, "seconds_per_frame": None, "status": f"failed: {reason[:120]}"}


if __name__ == "__main__":
    sys.exit(main())
