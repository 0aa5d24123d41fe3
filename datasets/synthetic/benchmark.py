"""The synthetic benchmark: base model, online fine-tuning, BOA, DynaBOA, source-free DynaBOA and the fast preset on
the synthetic target, under ground-truth 2D (`smpl_j2d`, the paper's #PS protocol) and estimated 2D (`op_j2d`, the
detector-noise keypoints), with the committed base model.

    python -m datasets.synthetic.benchmark                      # the full benchmark (bash run_on_synthetic.sh)
    python -m datasets.synthetic.benchmark --preset quick       # the README's table: the first target sequence
    python -m datasets.synthetic.benchmark --preset demo        # what `make demo` runs: short, GT 2D only

Everything is cached: the world (`python -m datasets.synthetic`), the base-model files copied into the world's data
root, the retrieval database (`python -m utils.retrieval`), and each finished run (its `metrics.json`); rerunning
continues where it stopped. The table is printed and written to `<out>/benchmark.md` and `benchmark.json`.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from config import REPO_ROOT

logger = logging.getLogger(__name__)

ASSETS = REPO_ROOT / "data" / "synthetic_assets"  # committed: basemodel.pt, smpl_mean_params.npz, gmm_08.pkl
ASSET_FILES = ("basemodel.pt", "smpl_mean_params.npz", "gmm_08.pkl")

# method -> dynaboa.py options (everything else at the paper's defaults)
METHODS = {
    "base model": ["--no-adapt", "--source-free"],  # no update, so no exemplars are needed
    "online fine-tuning": ["--no-use-boa"],
    "BOA": ["--no-dynamic-boa"],
    "DynaBOA": [],
    "DynaBOA source-free": ["--source-free"],
    "fast preset": ["--preset", "fast"],  # one level, layer4 + regressor, teacher loss (models/presets.py)
}
PROTOCOLS = {"GT 2D": "smpl_j2d", "estimated 2D": "op_j2d"}


@dataclass(frozen=True)
class Setting:
    """A benchmark size: which world, which methods and protocols, how many frames."""

    world: str  # preset of `python -m datasets.synthetic`
    root: str  # data root (relative to the repository)
    runs: tuple[tuple[str, str], ...]  # (method, protocol) pairs, in table order
    max_frames: int  # 0 = every frame of the target


def every_run(methods=tuple(METHODS), protocols=tuple(PROTOCOLS)) -> tuple[tuple[str, str], ...]:
    return tuple((m, p) for p in protocols for m in methods)


SETTINGS = {
    "full": Setting("default", "data/synthetic", every_run(), 0),
    # the first target sequence of the default world (300 frames): the README's table on a 2-core CPU
    "quick": Setting("default", "data/synthetic", every_run(protocols=("GT 2D",))
                     + every_run(("base model", "DynaBOA", "fast preset"), ("estimated 2D",)), 300),
    "demo": Setting("demo", "data/synthetic_demo", every_run(("base model", "DynaBOA"), ("GT 2D",)), 0),
}


def install_assets(root: Path, assets: Path | None = None) -> None:
    """Copy the committed base model, mean parameters and pose prior (`ASSETS`) into the world's data root."""
    assets = assets if assets is not None else ASSETS
    for name in ASSET_FILES:
        src = assets / name
        if not src.is_file():
            raise FileNotFoundError(f"{src} not found: it is committed with the repository; rebuild it with the "
                                    "commands in the README's 'Base model' section")
        dst = root / name
        if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
            shutil.copy2(src, dst)


def ensure_world(setting: Setting, root: Path, jobs: int) -> None:
    from datasets.synthetic.generate import generate_world

    generate_world(root, setting.world, seed=0, jobs=jobs)
    install_assets(root)


def older_than_model(path: Path, root: Path) -> bool:
    """True when `path` exists but predates the world's installed `basemodel.pt` (`install_assets` keeps the
    committed file's time): features, clusters and runs computed with an earlier base model are stale."""
    model = root / "basemodel.pt"
    return path.is_file() and model.is_file() and path.stat().st_mtime < model.stat().st_mtime


def ensure_retrieval(root: Path, k: int, max_samples: int) -> None:
    from utils.retrieval import CLUSTER_FILE, RetrievalConfig, build_database

    cluster = root / "retrieval_res" / CLUSTER_FILE
    stale = older_than_model(cluster, root)
    if stale:
        logger.info("%s predates %s: rebuilding the retrieval database", cluster, root / "basemodel.pt")
    if stale or not cluster.is_file():
        build_database(RetrievalConfig(data_root=root, k=k, max_samples=max_samples, device="cpu"))


def run_method(root: Path, out: Path, method: str, protocol: str, max_frames: int) -> dict:
    """One dynaboa.py run (skipped when its metrics exist); returns its metrics."""
    import dynaboa

    name = f"{method}_{PROTOCOLS[protocol]}".replace(" ", "_")
    metrics = out / name / "metrics.json"
    if older_than_model(metrics, root) or older_than_model(out / name / "state.pt", root):
        logger.info("%s was run with an earlier base model: running it again", out / name)
        shutil.rmtree(out / name)
    if not metrics.is_file():
        argv = ["--data-root", str(root), "--expdir", str(out), "--expname", name, "--keypoints",
                PROTOCOLS[protocol], "--device", "cpu", *METHODS[method]]
        if max_frames:
            argv += ["--max-frames", str(max_frames)]
        if (out / name / "state.pt").is_file():
            argv.append("--resume")
        if dynaboa.main(argv) != 0:
            raise RuntimeError(f"dynaboa.py failed for {name}")
    return json.loads(metrics.read_text())


def write_demo_overlay(run_dir: Path, root: Path) -> Path:
    """The overlay video of the run's first track: every frame of its sequence with the adapted mesh drawn by the
    full-image camera of the results (`utils.export`), at the target's 30 fps."""
    from config import DataPaths
    from models.smpl import build_smpl
    from utils.export import load_results, tracks_of, write_overlay_video
    from utils.render import Renderer

    res = load_results(run_dir)
    rows = next(iter(tracks_of(res).values()))
    seq_dir = DataPaths.from_root(root).pw3d_root / Path(str(res["imgname"][rows[0]])).parent
    frames = sorted(seq_dir.glob("image_*.jpg"))[: int(res["frame_id"][rows].max()) + 1]
    out = run_dir / "overlay.mp4"
    with Renderer(64, 64) as renderer:
        write_overlay_video(out, frames, res, rows, build_smpl(DataPaths.from_root(root), "neutral"), {}, 30.0,
                            renderer)
    return out


def format_table(results: dict[tuple[str, str], dict]) -> str:
    """Markdown table: one row per method and protocol, with the change of PA-MPJPE against the base model."""
    lines = ["| method | 2D keypoints | PA-MPJPE (mm) | MPJPE (mm) | PVE (mm) | s / frame | dynamic steps / frame | "
             "PA-MPJPE vs base |", "|---|---|---|---|---|---|---|---|"]
    for (method, protocol), m in results.items():
        base = results.get(("base model", protocol))
        change = "" if base is None or method == "base model" else \
            f"{100 * (m['pa_mpjpe'] / base['pa_mpjpe'] - 1):+.1f} %"
        lines.append(f"| {method} | {protocol} | {m['pa_mpjpe']:.1f} | {m['mpjpe']:.1f} | {m['pve']:.1f} | "
                     f"{m['seconds']:.3f} | {m.get('dynamic_steps', 0):.2f} | {change} |")
    return "\n".join(lines) + "\n"


def run_benchmark(setting: Setting, root: Path, out: Path, jobs: int = 1, k: int = 10,
                  max_samples: int = 5000) -> str:
    ensure_world(setting, root, jobs)
    if any("--source-free" not in METHODS[m] for m, _ in setting.runs):
        ensure_retrieval(root, k, max_samples)
    out.mkdir(parents=True, exist_ok=True)
    results = {(m, p): run_method(root, out, m, p, setting.max_frames) for m, p in setting.runs}
    table = format_table(results)
    dynaboa_runs = [p for m, p in setting.runs if m == "DynaBOA"]
    if dynaboa_runs:
        video = write_demo_overlay(out / f"DynaBOA_{PROTOCOLS[dynaboa_runs[0]]}", root)
        logger.info("overlay video of the first adapted sequence: %s", video)
    (out / "benchmark.md").write_text(table)
    (out / "benchmark.json").write_text(json.dumps({f"{m} | {p}": v for (m, p), v in results.items()}, indent=2))
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(SETTINGS), default="full", help="benchmark size")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: exps/synthetic_<preset>)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for generating the world")
    parser.add_argument("--k", type=int, default=10, help="clusters of the retrieval database")
    parser.add_argument("--max-samples", type=int, default=5000,
                        help="source frames in the retrieval database (a seeded random subset; 0 = all)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    setting = SETTINGS[args.preset]
    out = args.out or REPO_ROOT / "exps" / f"synthetic_{args.preset}"
    table = run_benchmark(setting, REPO_ROOT / setting.root, out, args.jobs, args.k, args.max_samples)
    print(table, end="")  # the table is this command's output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
