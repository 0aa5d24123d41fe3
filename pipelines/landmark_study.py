"""The embedded detector as a teacher (docs/benchmark.md §8): the MediaPipe 2D protocol and the landmark term.

Source-free study on target sequences generated alone (no source domain needed), in five steps:

    python -m pipelines.landmark_study targets --seed 0 --out data/synthetic24                  # stream of record
    python -m pipelines.landmark_study targets --seed 1 --out data/synthetic_val24 --sequences 3  # validation
    python -m pipelines.landmark_study sweep --data-root data/synthetic_val24 --out exps/landmark_sweep24 \\
        --frames 900 "base model" "FT x3 source-free" "FT x3 source-free + landmarks 30"
    python -m pipelines.landmark_study record --data-root data/synthetic24 --out exps/landmark_record24 \\
        --sweep exps/landmark_sweep24 "FT x3 source-free + flip skip"
    python -m pipelines.landmark_study cost --data-root data/synthetic_val24
    python -m pipelines.landmark_study windows exps/landmark_record24/base_model_mp_j2d exps/landmark_record24/*skip*

- `targets`: the first N target sequences of the default world with that seed, body model and regressors linked
  from `--source`, then the 3DPW preprocessing and the committed base model (`pipelines.benchmark.install_assets`).
- `sweep`: the MediaPipe detections (`datasets.preprocess.mediapipe3dpw`, cached), then each method of
  `plans/methods.yaml` under "MediaPipe 2D" on the first N frames (`pipelines.benchmark.run_method`).
- `record`: the same on the whole stream for the base model, fine-tuning x3 source-free and the sweep's landmark
  variant with the lowest PA-MPJPE, then any further METHOD given.
- `cost`: median seconds per adaptation step without and with the landmark term (the same frames, interleaved), and
  the term alone per evaluation.
- `windows`: each run's 300-frame window means (PA-MPJPE, MPJPE) against a base run's, from their `frames.csv`.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

PROTOCOL = "MediaPipe 2D"
LINKED = ("smpl", "J_regressor_extra.npy", "J_regressor_h36m.npy")
METRICS = ("pa_mpjpe", "mpjpe", "pve")
SWEEP_METHODS = ["base model", "FT x3 source-free", "FT x3 source-free + landmarks 30",
                 "FT x3 source-free + landmarks 100", "FT x3 source-free + landmarks 10"]
# the record's candidates from the sweep: the variant with the lowest validation PA-MPJPE is run on the record
CANDIDATES = ["FT x3 source-free + landmarks 10", "FT x3 source-free + landmarks 30",
              "FT x3 source-free + landmarks 100", "FT x3 source-free + landmarks 30 + flip skip",
              "FT x3 source-free + flip skip"]
RECORD_METHODS = ["base model", "FT x3 source-free"]  # run with the chosen variant between them


def make_targets(out: Path, seed: int, sequences: int | None, source: Path) -> int:
    """Generate the target sequences into `out` (body model linked from `source`), preprocess them as 3DPW and
    install the committed assets; returns the number of track files."""
    from datasets.preprocess.pw3d import preprocess_pw3d
    from datasets.synthetic.generate import generate_target
    from datasets.synthetic.world import world_paths
    from pipelines.benchmark import install_assets

    root = out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if not (root / name).exists():
            (root / name).symlink_to((source / name).resolve())
    generate_target(root, seed, sequences)
    paths = world_paths(root)
    tracks = len(preprocess_pw3d(paths.pw3d_root, paths.dataset_extras, paths, "test", 1.0))
    install_assets(root)
    return tracks


def run_methods(root: Path, out: Path, methods: Sequence[str], frames: int) -> dict[str, dict]:
    """The MediaPipe detections of `root` (cached), then each method under "MediaPipe 2D" on its first `frames`
    person-frames (0: all); prints and returns each run's metrics."""
    from datasets.preprocess import mediapipe3dpw
    from pipelines.benchmark import run_method

    root, out = root.resolve(), out.resolve()
    start = time.time()
    mediapipe3dpw.main(["--data-root", str(root)])
    print("mediapipe preprocessing seconds", round(time.time() - start, 1), flush=True)
    results = {}
    for method in methods:
        start = time.time()
        res = run_method(root, out, method, PROTOCOL, frames)
        results[method] = {k: res[k] for k in METRICS if k in res}
        print(method, results[method], "seconds", round(time.time() - start), flush=True)
    return results


def best_candidate(sweep: Path) -> str:
    """The sweep's candidate variant with the lowest PA-MPJPE (among those whose run finished)."""
    from pipelines.benchmark import run_name

    scores = {}
    for method in CANDIDATES:
        metrics = sweep / run_name(method, PROTOCOL) / "metrics.json"
        if metrics.is_file():
            scores[method] = json.loads(metrics.read_text())["pa_mpjpe"]
    if not scores:
        raise FileNotFoundError(f"no finished candidate run under {sweep}: run the sweep first")
    best = min(scores, key=scores.get)
    print("validation PA-MPJPE", scores, "chosen", best, flush=True)
    return best


def step_costs(data_root: Path, frames: int, weight: float) -> None:
    """Median seconds per adaptation step (fine-tuning x3, source-free, one thread, CPU) without and with the
    landmark term at `weight`, on the same MediaPipe-2D frames stepped by both adaptors in turn."""
    from config import AdaptConfig, DataPaths
    from datasets.pw3d import PW3DStream
    from pipelines.passes import frame_of
    from pipelines.session import build_adaptor

    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    paths = DataPaths.from_root(data_root)
    base = dataclasses.replace(AdaptConfig(), use_boa=False, lr_scale=3, retrieval=False, lower_level_mixtrain=False,
                               upper_level_mixtrain=False)
    adaptors = {w: build_adaptor(dataclasses.replace(base, landmark_weight=w), paths, cpu)[0] for w in (0.0, weight)}
    stream = PW3DStream(paths.dataset_extras, paths.pw3d_root, 224, "mp_j2d")
    items = [stream[i] for i in range(0, 300, 5) if stream[i].landmarks is not None][:frames]
    times: dict[float, list[float]] = {w: [] for w in adaptors}
    for item in items:
        for w, adaptor in adaptors.items():
            start = time.perf_counter()
            adaptor.step(frame_of(item, cpu))
            times[w].append(time.perf_counter() - start)
    without, with_term = statistics.median(times[0.0]), statistics.median(times[weight])
    term = adaptors[weight].landmarks
    print(f"frames {len(items)}: median step without {without:.4f} s, with {with_term:.4f} s, ratio "
          f"{with_term / without:.3f}; landmark term used {term.used}, gated {term.gated}")
    if items:
        term_cost(items[0].landmarks, weight)


def term_cost(landmarks: np.ndarray | torch.Tensor, weight: float, evaluations: int = 200) -> None:
    """Milliseconds per forward and backward of the landmark term (with its gate) on random joints."""
    from models import teacher3d

    joints = torch.randn(1, 24, 3, requires_grad=True)
    world, keypoints = torch.as_tensor(landmarks, dtype=torch.float32)[None], torch.ones(1, 24, 3)
    target = teacher3d.LandmarkTarget(weight, 90.0, 0.0)
    start = time.perf_counter()
    for _ in range(evaluations):
        terms = target.terms(world, keypoints, joints, {})
        if terms:
            terms["landmarks"].backward()
    print(f"term alone: {(time.perf_counter() - start) / evaluations * 1000:.3f} ms per evaluation")


def load_frames(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PA-MPJPE and MPJPE of a run (its `frames.csv`)."""
    with open(run / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([float(r["pa_mpjpe"]) for r in rows]), np.array([float(r["mpjpe"]) for r in rows])


def compare_windows(base_run: Path, runs: Sequence[Path], window: int = 300) -> None:
    """Print each run's window means (PA-MPJPE, base PA-MPJPE, MPJPE, base MPJPE) and how many are worse than base."""
    base_pa, base_mp = load_frames(base_run)
    for run in runs:
        pa, mp = load_frames(run)
        means = [tuple(round(float(x[i:i + window].mean()), 1) for x in (pa, base_pa, mp, base_mp))
                 for i in range(0, len(pa), window)]
        worse_pa = sum(a > b for a, b, _, _ in means)
        worse_mp = sum(c > d for _, _, c, d in means)
        print(run.name, "windows (PA, base PA, MPJPE, base MPJPE):", means, "worse than base PA", worse_pa, "MPJPE",
              worse_mp, "of", len(means))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    targets = sub.add_parser("targets", help="generate a world's target sequences alone, preprocessed")
    targets.add_argument("--seed", type=int, required=True, help="world seed (0: record, 1: validation)")
    targets.add_argument("--out", type=Path, required=True, help="data root to write")
    targets.add_argument("--sequences", type=int, default=None, help="first N sequences (default: all)")
    targets.add_argument("--source", type=Path, default=Path("data/synthetic"),
                         help="data root whose body model and regressors are linked (default: data/synthetic)")
    sweep = sub.add_parser("sweep", help="methods under MediaPipe 2D on the first N frames")
    sweep.add_argument("--data-root", type=Path, required=True)
    sweep.add_argument("--out", type=Path, required=True, help="experiment folder of the runs")
    sweep.add_argument("--frames", type=int, required=True, help="first N person-frames (0: all)")
    sweep.add_argument("methods", nargs="*", metavar="METHOD", help=f"plans/methods.yaml names (default: "
                       f"{', '.join(SWEEP_METHODS)})")
    record = sub.add_parser("record", help="the whole stream: base, FT x3 source-free, the sweep's choice")
    record.add_argument("--data-root", type=Path, required=True)
    record.add_argument("--out", type=Path, required=True, help="experiment folder of the runs")
    record.add_argument("--sweep", type=Path, required=True, help="the sweep's experiment folder")
    record.add_argument("methods", nargs="*", metavar="METHOD", help="further methods to run after those")
    cost = sub.add_parser("cost", help="per-step cost of the landmark term")
    cost.add_argument("--data-root", type=Path, required=True, help="a root with the MediaPipe detections")
    cost.add_argument("--frames", type=int, default=30, help="frames with landmarks stepped (default 30)")
    cost.add_argument("--weight", type=float, default=30.0, help="landmark weight (default 30)")
    windows = sub.add_parser("windows", help="window means of runs against a base run")
    windows.add_argument("base", type=Path, help="the base run's folder")
    windows.add_argument("runs", type=Path, nargs="+", help="the compared runs' folders")
    windows.add_argument("--window", type=int, default=300, help="frames per window (default 300)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if ns.command == "targets":
        print(make_targets(ns.out, ns.seed, ns.sequences, ns.source), "track files")
    elif ns.command == "sweep":
        run_methods(ns.data_root, ns.out, ns.methods or SWEEP_METHODS, ns.frames)
    elif ns.command == "record":
        methods = [RECORD_METHODS[0], best_candidate(ns.sweep), *RECORD_METHODS[1:]]
        run_methods(ns.data_root, ns.out, methods + [m for m in ns.methods if m not in methods], 0)
    elif ns.command == "cost":
        step_costs(ns.data_root, ns.frames, ns.weight)
    else:
        compare_windows(ns.base, ns.runs, ns.window)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
