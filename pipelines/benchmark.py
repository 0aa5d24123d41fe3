"""The synthetic benchmark: the methods of `plans/methods.yaml` on the synthetic target under GT 2D (`smpl_j2d`, the
paper's #PS protocol) and estimated 2D (`op_j2d`, the detector-noise keypoints), with the committed base model.

    python -m pipelines.benchmark                      # the benchmark of record (bash run_on_synthetic.sh)
    python -m pipelines.benchmark --plan quick         # a short check: the first target sequence
    python -m pipelines.benchmark --plan demo          # what `make demo` runs: short, GT 2D only
    python -m pipelines.benchmark --plan validation --only DynaBOA --max-frames 900 --out exps/val_x

A plan (`plans/<name>.yaml`, or a path) names the world, the frames, the window of the learning curves and which
methods run under which keypoints. Methods are independent, so `--jobs N` runs them in N processes (each stream
stays serial, one process each). Everything is cached: the world (`python -m datasets.synthetic`), the base-model
files copied into the world's data root, the retrieval database (`python -m datasets.retrieval`), and each run (a
finished one is skipped, an interrupted one resumes). The tables are printed and written to `<out>/benchmark.md` and
`benchmark.json`; the learning curves to `<out>/curves.png` (and to the plan's `figure`, when it names one).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from config import REPO_ROOT, AdaptConfig
from datasets.pw3d import PROTOCOL_NAMES

logger = logging.getLogger(__name__)

ASSETS = REPO_ROOT / "data" / "synthetic_assets"  # committed: basemodel.pt, smpl_mean_params.npz, gmm_08.pkl
ASSET_FILES = ("basemodel.pt", "smpl_mean_params.npz", "gmm_08.pkl")
PLANS = Path(__file__).with_name("plans")
PROTOCOLS = PROTOCOL_NAMES  # plan name -> RunConfig.keypoints


def load_methods(path: Path = PLANS / "methods.yaml") -> dict[str, dict[str, dict[str, Any]]]:
    """Method name -> {"run": RunConfig options, "adapt": AdaptConfig options}."""
    methods = yaml.safe_load(path.read_text())
    for name, spec in methods.items():
        spec = spec or {}
        unknown = set(spec) - {"run", "adapt"}
        if unknown:
            raise ValueError(f"{path}: method {name!r} has unknown sections {sorted(unknown)}; expected run, adapt")
        methods[name] = {"run": dict(spec.get("run") or {}), "adapt": dict(spec.get("adapt") or {})}
    return methods


METHODS = load_methods()


@dataclass(frozen=True)
class Plan:
    """A benchmark: which world, which (method, protocol) runs in table order, how many frames, curve window."""

    world: str  # preset of `python -m datasets.synthetic`
    root: str  # data root (relative to the repository)
    runs: tuple[tuple[str, str], ...]  # (method, protocol) pairs
    max_frames: int = 0  # 0 = every frame of the target
    seed: int = 0  # seed of the world
    window: int = 300  # frames per window of the learning curves
    figure: str | None = None  # also write the curves here (relative to the repository)
    overlay: bool = False  # overlay video of the first DynaBOA run
    source: str | None = None  # take the source domain and body model from this world (seed 0) instead
    first: tuple[str, ...] = ()  # methods whose runs start before the others (the table keeps the plan's order)


def load_plan(name_or_path: str) -> Plan:
    """A plan from `plans/<name>.yaml` or a YAML path; its methods must be in `METHODS`."""
    path = Path(name_or_path)
    path = path if path.suffix in (".yaml", ".yml") else PLANS / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark plan {path}: choose one of {sorted(p.stem for p in PLANS.glob('*.yaml'))}")
    spec = yaml.safe_load(path.read_text())
    runs = []
    for protocol, methods in spec.pop("runs").items():
        if protocol not in PROTOCOLS:
            raise ValueError(f"{path}: unknown keypoints {protocol!r}; expected one of {list(PROTOCOLS)}")
        for method in methods:
            if method not in METHODS:
                raise ValueError(f"{path}: unknown method {method!r}; methods are named in {PLANS / 'methods.yaml'}")
            runs.append((method, protocol))
    return Plan(runs=tuple(runs), first=tuple(spec.pop("first", ())), **spec)


def run_name(method: str, protocol: str) -> str:
    name = "".join(c for c in method if c not in "(),")
    return f"{name}_{PROTOCOLS[protocol]}".replace(" ", "_")


def install_assets(root: Path, assets: Path | None = None) -> None:
    """Copy the committed base model, mean parameters and pose prior (`ASSETS`) into the world's data root."""
    assets = assets if assets is not None else ASSETS
    for name in ASSET_FILES:
        src = assets / name
        if not src.is_file():
            raise FileNotFoundError(f"{src} not found: it is committed with the repository; rebuild it with the "
                                    "commands in docs/base_model.md")
        dst = root / name
        if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
            shutil.copy2(src, dst)


SHARED_SOURCE = ("h36m", "smpl", "J_regressor_extra.npy", "J_regressor_h36m.npy", "retrieval_res")


def link_source(root: Path, source: Path) -> None:
    """Link the source domain (Human3.6M-like images and parts, the retrieval database) and the body model of the
    world in `source` into `root`, so that only `root`'s target is generated with its own seed: the base model's
    training domain and SMPL stay what they are, as they would for a real new target."""
    root.mkdir(parents=True, exist_ok=True)
    for name in SHARED_SOURCE:
        link = root / name
        if not link.exists() and (source / name).exists():
            link.symlink_to((source / name).resolve(), target_is_directory=(source / name).is_dir())


def ensure_world(plan: Plan, root: Path, jobs: int) -> None:
    from datasets.synthetic.generate import generate_world

    if plan.source:
        source = REPO_ROOT / plan.source
        generate_world(source, plan.world, seed=0, jobs=jobs)
        install_assets(source)
        link_source(root, source)
    generate_world(root, plan.world, seed=plan.seed, jobs=jobs)
    install_assets(root)


def older_than_model(path: Path, root: Path) -> bool:
    """True when `path` exists but predates the world's installed `basemodel.pt` (`install_assets` keeps the
    committed file's time): features, clusters and runs computed with an earlier base model are stale."""
    model = root / "basemodel.pt"
    return path.is_file() and model.is_file() and path.stat().st_mtime < model.stat().st_mtime


def ensure_retrieval(root: Path, k: int, max_samples: int) -> None:
    from datasets.retrieval import CLUSTER_FILE, RetrievalConfig, build_database

    cluster = root / "retrieval_res" / CLUSTER_FILE
    stale = older_than_model(cluster, root)
    if stale:
        logger.info("%s predates %s: rebuilding the retrieval database", cluster, root / "basemodel.pt")
    if stale or not cluster.is_file():
        build_database(RetrievalConfig(data_root=root, k=k, max_samples=max_samples, device="cpu"))


def run_configs(root: Path, out: Path, method: str, protocol: str, max_frames: int, threads: int):
    """The run and adaptation settings of one benchmark run, resolved as `dynaboa.py` resolves its options."""
    from pipelines.session import RunConfig, resolve_adapt

    spec = METHODS[method]
    name = run_name(method, protocol)
    resume = (out / name / "state.pt").is_file() or (out / name / "frames.csv").is_file()
    run = RunConfig(data_root=root, expdir=out, expname=name, keypoints=PROTOCOLS[protocol], device="cpu",
                    max_frames=max_frames, resume=resume, threads=threads, workers=0, **spec["run"])
    adapt = resolve_adapt(run, dataclasses.replace(AdaptConfig(), **spec["adapt"]), explicit=set(spec["adapt"]))
    return run, adapt


def run_method(root: Path, out: Path, method: str, protocol: str, max_frames: int, threads: int = 0) -> dict:
    """One run through `pipelines.session` (skipped when its metrics exist, resumed when interrupted); returns its
    metrics."""
    from pipelines.session import run_session

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    name = run_name(method, protocol)
    metrics = out / name / "metrics.json"
    if older_than_model(metrics, root) or older_than_model(out / name / "state.pt", root):
        logger.info("%s was run with an earlier base model: running it again", out / name)
        shutil.rmtree(out / name)
    if not metrics.is_file():
        run, adapt = run_configs(root, out, method, protocol, max_frames, threads)
        if run_session(run, adapt) is None:
            raise RuntimeError(f"the run {name} could not start: see the log above")
    return json.loads(metrics.read_text())


def start_order(plan: Plan, runs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The runs of the plan's `first` methods (keypoints by keypoints, each in the `first` order), then the others
    in the plan's order."""
    protocols = list(dict.fromkeys(p for _, p in plan.runs))
    return sorted(runs, key=lambda r: (r[0] not in plan.first, protocols.index(r[1]),
                                       plan.first.index(r[0]) if r[0] in plan.first else 0))


def run_all(plan: Plan, root: Path, out: Path, jobs: int) -> dict[tuple[str, str], dict]:
    """Every run of the plan, in `jobs` processes (one stream per process, `cores // jobs` torch threads each)."""
    import joblib

    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    todo = [r for r in plan.runs if not (out / run_name(*r) / "metrics.json").is_file()
            or older_than_model(out / run_name(*r) / "metrics.json", root)]
    todo = start_order(plan, todo)
    if jobs > 1 and len(todo) > 1:
        logger.info("%d runs, %d to do, in %d processes", len(plan.runs), len(todo), jobs)
        joblib.Parallel(n_jobs=jobs)(joblib.delayed(run_method)(root, out, m, p, plan.max_frames, threads)
                                     for m, p in todo)
    return {(m, p): run_method(root, out, m, p, plan.max_frames) for m, p in plan.runs}


def write_demo_overlay(run_dir: Path, root: Path) -> Path:
    """The overlay video of the run's first track: every frame of its sequence with the adapted mesh drawn by the
    full-image camera of the results (`datasets.export`), at the target's 30 fps."""
    from config import DataPaths
    from datasets.export import load_results, tracks_of, write_overlay_video
    from models.smpl import build_smpl
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


def finished_runs(plan: Plan, out: Path) -> dict[tuple[str, str], dict]:
    """The metrics of the plan's runs that have finished (the others are left out)."""
    done = {r: out / run_name(*r) / "metrics.json" for r in plan.runs}
    return {r: json.loads(path.read_text()) for r, path in done.items() if path.is_file()}


def run_benchmark(plan: Plan, root: Path, out: Path, jobs: int = 1, k: int = 10, max_samples: int = 5000,
                  report_only: bool = False) -> str:
    """Build what is missing, run what is not finished, and write the tables and curves; returns the tables.
    `report_only`: run nothing; tables and curves of the finished runs, naming those not run."""
    from pipelines import report

    if report_only:
        results = finished_runs(plan, out)
    else:
        ensure_world(plan, root, jobs)
        if any(run_configs(root, out, m, p, 0, 0)[1].retrieval for m, p in plan.runs):
            ensure_retrieval(root, k, max_samples)
        if any(PROTOCOLS[p] == "mp_j2d" for _, p in plan.runs):  # the MediaPipe 2D protocol's detections (cached)
            from datasets.preprocess import mediapipe3dpw

            mediapipe3dpw.main(["--data-root", str(root)])
        out.mkdir(parents=True, exist_ok=True)
        results = run_all(plan, root, out, jobs)
    rows = {key: report.read_rows(out / run_name(*key)) for key in results}
    text = report.format_report(results, rows, plan.window)
    missing = [f"{m} ({p})" for m, p in plan.runs if (m, p) not in results]
    if missing:
        text += "\nNot run yet: " + ", ".join(missing) + ".\n"
    (out / "benchmark.md").write_text(text)
    (out / "benchmark.json").write_text(json.dumps({f"{m} | {p}": v for (m, p), v in results.items()}, indent=2))
    figures = [out / "curves.png"] + ([REPO_ROOT / plan.figure] if plan.figure else [])
    report.plot_curves(rows, plan.window, figures)
    dynaboa_runs = [p for m, p in plan.runs if m == "DynaBOA"]
    if plan.overlay and dynaboa_runs:
        video = write_demo_overlay(out / run_name("DynaBOA", dynaboa_runs[0]), root)
        logger.info("overlay video of the first adapted sequence: %s", video)
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", "--preset", dest="plan", default="full",
                        help="a plan in pipelines/plans (full, quick, demo, validation) or a YAML path")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: exps/synthetic_<plan>)")
    parser.add_argument("--jobs", type=int, default=2, help="processes: runs in parallel, and world generation")
    parser.add_argument("--only", action="append", default=None, help="run only this method (repeatable)")
    parser.add_argument("--max-frames", type=int, default=None, help="override the plan's frame count (0 = all)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the tables and curves of the runs that have finished")
    parser.add_argument("--k", type=int, default=10, help="clusters of the retrieval database")
    parser.add_argument("--max-samples", type=int, default=5000,
                        help="source frames in the retrieval database (a seeded random subset; 0 = all)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    plan = load_plan(args.plan)
    if args.only:
        unknown = set(args.only) - set(METHODS)
        if unknown:
            raise SystemExit(f"unknown method(s) {sorted(unknown)}: methods are named in {PLANS / 'methods.yaml'}")
        plan = dataclasses.replace(plan, runs=tuple(r for r in plan.runs if r[0] in args.only), figure=None)
    if args.max_frames is not None:
        plan = dataclasses.replace(plan, max_frames=args.max_frames)
    out = args.out or REPO_ROOT / "exps" / f"synthetic_{Path(args.plan).stem}"
    print(run_benchmark(plan, REPO_ROOT / plan.root, out, args.jobs, args.k, args.max_samples, args.report_only),
          end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
