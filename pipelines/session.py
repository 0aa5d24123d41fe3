"""A DynaBOA run as importable functions: resolve the configuration, build the adaptor and the stream, adapt the
stream frame by frame into a run directory (resumable), and adapt sequences in parallel processes.

`dynaboa.py` is the command line over these functions; the webcam program, the synthetic benchmark and the speed
benchmark call them directly. A run directory `<expdir>/<expname>/` receives the resolved config, one CSV row per frame
as frames finish, chunks of predictions and, at each chunk's end, the state that `--resume` continues from;
`metrics.json` at the end.

The original adapts one continuous stream. `reset_per_sequence` starts every sequence (the track name before ":",
e.g. `3dpw_25`; the persons of a sequence share its scene, so adaptation carries over between them) from the base
model with a seed derived from the sequence name, and then `jobs` > 1 adapts sequences in that many processes through
joblib, or `backend` "dask" on a dask.distributed cluster (`pipelines.cluster`). Each sequence writes its own run under `sequences/<name>/` (resumable on its own); they are merged into the
same files, in stream order, identical to the serial run given the same `threads`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Sequence

import numpy as np
import torch

from config import POSITIVE, AdaptConfig, DataPaths, config_to_dict, option
from datasets.base import collate_single, sequence_ranges, stream_tracks
from datasets.checkpoint import input_size
from datasets.pw3d import DETECTED_KEYPOINTS, GT_KEYPOINTS, KEYPOINT_SOURCES
from datasets.results import FIELDS, RunWriter, prediction_arrays, savez_atomic, summarize
from datasets.runrecord import SYNTHETIC_NOTE, RunExists, clear_run, holds_run, provenance, resume_record
from models.adaptor import Adaptor, Runtime
from models.hmr import load_hmr_checkpoint
from models.presets import ADAPTED_SCOPES, PRESETS, apply_preset, scoped_adaptor
from models.prior import MaxMixturePrior
from models.smpl import build_smpl
from pipelines.budget import Budget
from pipelines.cluster import BACKENDS, Task, raise_failures, run_tasks
from pipelines.divergence import UpdateCount, require_finite
from pipelines.passes import adapt_passes, frame_of, stream_end
from utils.io import atomic_path, write_json
from utils.keypoints import CONFIDENCE_MODES
from utils.runtime import resolve_device, seed_everything

logger = logging.getLogger("dynaboa")
PARTS_DIR = "sequences"  # <exppath>/sequences/<name>/: one sequence of a parallel run


@dataclass
class RunConfig:
    """What to adapt on and where results go."""

    dataset: str = option("test stream", default="3dpw", choices=("3dpw", "internet"))
    expdir: Path = option("output root", default=Path("exps"))
    expname: str = option("run name; results in <expdir>/<expname>", default="3dpw")
    data_root: Path | None = option("data root (default: $DYNABOA_DATA or data/)", default=None)
    model_file: Path | None = option("base model checkpoint (default: <data root>/basemodel.pt)", default=None)
    keypoints: str = option("2D keypoints that drive adaptation on 3DPW: projected GT (#PS) or the file's detections",
                        default=GT_KEYPOINTS, choices=KEYPOINT_SOURCES)
    kp_confidence: str = option("how detected keypoints' confidences weigh the 2D losses: binary (the original: 1 "
                                "above 0.3, else 0) or weights (the confidence itself above 0.3)", default="binary",
                                choices=CONFIDENCE_MODES)
    source_free: bool = option("no source exemplars (no Human3.6M needed): retrieval and co-training off", default=False)
    img_res: int = option("crop size; 0 = the checkpoint's img_res entry, else 224", default=0)
    seed: int = option("random seed", default=22)
    device: str = option("auto, cpu or cuda", default="auto")
    max_frames: int = option("stop after this many frames (0 = all)", default=0)
    chunk: int = option("frames per prediction file and per saved resume state", default=500, check=POSITIVE)
    resume: bool = option("continue the run in <expdir>/<expname>", default=False)
    overwrite: bool = option("replace the run in <expdir>/<expname> (its results are deleted first)", default=False)
    allow_changed_options: bool = option("with --resume: continue although result-changing options differ from the "
                                         "recorded ones (the change is recorded in config.json)", default=False)
    keep_state: bool = option("keep the resume state (state.pt) after the run finishes, so that it can be extended",
                              default=False)
    workers: int = option("image-reading worker processes (0 in the processes of --jobs)", default=1)
    check_assets: bool = option("only check that every needed file is present and valid, then exit", default=False)
    focal_length: float = option("focal length (pixels) of the full-image camera in the results; 0 = 1.2 min(W, H)",
                                 default=0.0)
    batch_size: int = option("kept for the original's command lines; adaptation is per frame (must be 1)", default=1)
    preset: str = option("schedule: paper (DynaBOA), fast (one level with the teacher loss, layer4 + regressor "
                         "adapt, no source data), finetune (one level, every weight, exemplars kept: what the "
                         "synthetic validation world chose) or live (finetune on every 4th frame, rates x 4: "
                         "docs/speed.md); options given explicitly override it", default="paper",
                         choices=tuple(PRESETS))
    adapted: str | None = option("parameters that adapt (default: the preset's)", default=None,
                                 choices=tuple(ADAPTED_SCOPES))
    bf16: bool = option("bfloat16 autocast of the network (CPU and CUDA)", default=False)
    channels_last: bool = option("channels-last memory format for the network", default=False)
    reset_per_sequence: bool = option("start every sequence from the base model (the original: one stream)",
                                      default=False)
    jobs: int = option("sequences adapted in parallel processes (needs --reset-per-sequence)", default=1,
                       check=POSITIVE)
    threads: int = option("torch threads per process (0: torch's default, or cores / jobs with --jobs)", default=0)
    backend: str = option("sequences of --reset-per-sequence on local processes or a dask cluster", default="local",
                          choices=BACKENDS)
    scheduler: str = option("dask scheduler (tcp://HOST:8786); empty: a local cluster of --jobs workers", default="")
    passes: int = option("passes over a recorded stream: adapt over it N times, write the last pass's predictions "
                         "(pipelines/passes.py)", default=1, check=POSITIVE)


# the original's options that have no effect (docs/method.md §10); accepted so old command lines still run
IGNORED_ORIGINAL_OPTIONS = ("--seq_seed", "--record_lowerlevel", "--mixtrain", "--save_res")


def resolve_adapt(run: RunConfig, adapt: AdaptConfig, explicit: Collection[str] = ()) -> AdaptConfig:
    """The adaptation settings a run uses: `adapt` with the run's preset applied (fields named in `explicit`, those
    the user set, are kept), exemplars off when source-free, and the original's per-dataset defaults."""
    adapt = apply_preset(adapt, run.preset, keep=explicit)
    if run.source_free:
        adapt = _said(adapt, "--source-free", retrieval=False, lower_level_mixtrain=False, upper_level_mixtrain=False)
    if run.dataset == "internet" and "shape_prior_weight" not in explicit:
        adapt = _said(adapt, "--dataset internet", shape_prior_weight=2e-4)  # the original's internet setting
    if run.keypoints == DETECTED_KEYPOINTS and "keypoint_block" not in explicit:
        adapt = _said(adapt, "--keypoints op_j2d", keypoint_block="gt")  # detections are mapped into both blocks
    return adapt


def _said(adapt: AdaptConfig, why: str, **changes: object) -> AdaptConfig:
    """`adapt` with `changes`, logged when they change a value (a run option never rewrites one silently)."""
    changed = {key: value for key, value in changes.items() if getattr(adapt, key) != value}
    if changed:
        logger.info("%s sets %s (give the option to choose otherwise; recorded in config.json)", why,
                    ", ".join(f"{key}={value}" for key, value in changed.items()))
    return dataclasses.replace(adapt, **changes)

def build_stream(run: RunConfig, paths: DataPaths, img_res: int) -> torch.utils.data.Dataset:
    if run.dataset == "3dpw":
        from datasets.pw3d import PW3DStream

        return PW3DStream(paths.dataset_extras, paths.pw3d_root, img_res, run.keypoints, run.kp_confidence)
    from datasets.internet import InternetStream

    return InternetStream(paths.internet_root, img_res)


def build_adaptor(adapt: AdaptConfig, paths: DataPaths, device: torch.device, model_file: Path | None = None,
                  img_res: int = 0, adapted: str = "all", seed: int = 22, runtime: Runtime | None = None
                  ) -> tuple[Adaptor, int]:
    """The adaptor over the base model `model_file` (default `paths.base_model`) with only the `adapted` scope's
    parameters trainable, the neutral SMPL, the GMM prior and, when the settings use exemplars, the retrieval bank;
    returns it with the crop size (`img_res`, or the checkpoint's `img_res` entry, else 224)."""
    model_file = model_file or paths.base_model
    img_res = input_size(model_file, img_res)
    model = load_hmr_checkpoint(model_file).to(device)
    smpl = build_smpl(paths, "neutral").to(device)
    prior = MaxMixturePrior.from_file(paths.gmm_prior).to(device) if adapt.pose_prior_weight > 0 else None
    bank = None
    if adapt.retrieval and (adapt.lower_level_mixtrain or adapt.upper_level_mixtrain):
        from datasets.retrieval import ExemplarBank

        bank = ExemplarBank(paths.retrieval_dir, img_res, device, seed=seed)
    return scoped_adaptor(model, smpl, adapt, adapted, prior, bank, runtime), img_res


def adaptor_for_run(run: RunConfig, adapt: AdaptConfig, paths: DataPaths, device: torch.device
                    ) -> tuple[Adaptor, int]:
    """`build_adaptor` with a run's model file, crop size, adapted scope (else its preset's), seed and runtime."""
    return build_adaptor(adapt, paths, device, run.model_file, run.img_res, run.adapted or PRESETS[run.preset].adapted,
                         run.seed, Runtime(bf16=run.bf16, channels_last=run.channels_last))


# ----------------------------------------------------------------------------------------------------------------
# Sequences
# ----------------------------------------------------------------------------------------------------------------


def start_sequence(adaptor: Adaptor, seed: int, name: str) -> None:
    """Back to the base model, with every generator seeded from (`seed`, sequence name): a sequence's results do
    not depend on which process adapts it or on what ran before."""
    adaptor.reset()
    sequence_seed = (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**32
    seed_everything(sequence_seed)
    if adaptor.exemplars is not None:
        adaptor.exemplars.rng = np.random.default_rng(sequence_seed)


def set_threads(run: RunConfig) -> None:
    threads = run.threads or (max(1, (os.cpu_count() or 1) // run.jobs) if run.jobs > 1 else 0)
    if threads:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------------------------
# The frame loop
# ----------------------------------------------------------------------------------------------------------------


def adapt_stream(adaptor: Adaptor, stream, writer: RunWriter, evaluator, run: RunConfig, device: torch.device,
                 first: int = 0, end: int | None = None) -> None:
    """The frame loop over items [first, end): adapt, predict, evaluate, write; state saved at every chunk's end.

    The writer counts frames from `first` (each sequence of a parallel run has its own). With
    `run.reset_per_sequence`, the adaptor starts afresh at the first frame of every sequence.
    """
    from tqdm import tqdm

    end = end if end is not None else len(stream) if run.max_frames <= 0 else min(len(stream), run.max_frames)
    tracks = stream_tracks(stream) if run.reset_per_sequence else None
    subset = torch.utils.data.Subset(stream, range(first + writer.start, end))
    loader = torch.utils.data.DataLoader(subset, batch_size=1, collate_fn=collate_single, num_workers=run.workers)
    running: dict[str, list[float]] = {}  # metric -> [sum, count] (constant memory over any stream length)
    bar = tqdm(loader, total=len(subset), desc="adapting", dynamic_ncols=True)
    budget = Budget.from_config(adaptor.cfg, writer.state)  # which frames are adapted on (pipelines/budget.py)
    updates = UpdateCount()  # updates skipped as non-finite, reported at the end (pipelines/divergence.py)
    for item in bar:
        if tracks is not None and (item.index == 0 or tracks[item.index - 1][0] != item.track[0]):
            start_sequence(adaptor, run.seed, item.track[0])
        started = time.perf_counter()
        frame = frame_of(item, device)
        res = adaptor.step(frame, adapt=budget.wants(item.index))
        budget.spend(time.perf_counter() - started)
        row = {"index": item.index, "imgname": item.imgname, "track": f"{item.track[0]}:{item.track[1]}",
               "updated": res.updated, "dynamic_steps": res.dynamic_steps,
               "seconds": round(time.perf_counter() - started, 4)}
        arrays = prediction_arrays(item, res, run.focal_length)
        require_finite(arrays, f"frame {item.index} ({item.imgname})", adaptor.cfg.lr)  # before it is evaluated
        updates.add(res.updated, res.skipped_reason)
        if evaluator is not None:
            metrics = evaluator(res.vertices, item.gt)
            row.update({k: round(v, 3) for k, v in metrics.items()})
            for key, value in metrics.items():
                total = running.setdefault(key, [0.0, 0])
                total[0], total[1] = total[0] + value, total[1] + 1
            bar.set_postfix({k: f"{v[0] / v[1]:.1f}" for k, v in running.items()}, refresh=False)
        writer.add(row, arrays)
        done = item.index + 1 - first
        if done % run.chunk == 0 or item.index + 1 == end:
            writer.end_chunk(done, resume_state(adaptor, budget))
    updates.report(adaptor.cfg.lr)


def resume_state(adaptor: Adaptor, budget: Budget | None = None) -> dict:
    bank = adaptor.exemplars
    return {"adaptor": adaptor.state_dict(), "torch_rng": torch.get_rng_state(),
            "bank_rng": bank.rng.bit_generator.state if bank is not None else None,
            "budget": budget.state_dict() if budget is not None else None}


def restore_state(adaptor: Adaptor, state: dict) -> None:
    adaptor.load_state_dict(state["adaptor"])
    torch.set_rng_state(state["torch_rng"])
    if adaptor.exemplars is not None and state["bank_rng"] is not None:
        adaptor.exemplars.rng.bit_generator.state = state["bank_rng"]


def build_evaluator(run: RunConfig, paths: DataPaths, device: torch.device):
    if run.dataset != "3dpw":
        return None
    from datasets.evaluation import Evaluator

    return Evaluator(paths, device)


def adapt_run(run: RunConfig, adapt: AdaptConfig, exppath: Path, first: int = 0, end: int | None = None,
              stream: torch.utils.data.Dataset | None = None) -> dict:
    """Adapt items [first, end) of the stream (built when None) into the run directory `exppath`, resuming it with
    `run.resume`; returns the summary."""
    paths = DataPaths.from_root(run.data_root)
    if run.resume and end is not None and sequence_done(exppath, end - first):
        logger.info("%s already finished all %d frames; nothing to continue", exppath, end - first)
        return json.loads((exppath / "metrics.json").read_text())
    device = resolve_device(run.device)
    adaptor, img_res = adaptor_for_run(run, adapt, paths, device)
    stream = stream if stream is not None else build_stream(run, paths, img_res)
    writer = RunWriter(exppath, run.chunk, resume=run.resume, keep_state=run.keep_state)
    if writer.state is not None:
        restore_state(adaptor, writer.state)
        logger.info("resuming %s at frame %d", exppath, first + writer.start)
    elif run.passes > 1:  # the first passes, kept nothing of; the loop below is the last one
        adapt_passes(adaptor, stream, run.passes, device, first, end or stream_end(stream, run.max_frames), run.workers)
    adapt_stream(adaptor, stream, writer, build_evaluator(run, paths, device), run, device, first, end)
    summary = summarize(writer.rows_so_far())
    writer.finish(summary)
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Sequences in parallel
# ----------------------------------------------------------------------------------------------------------------


def adapt_sequence(run: RunConfig, adapt: AdaptConfig, name: str, first: int, end: int) -> None:
    """One sequence of a parallel run, in a worker process: its own run under `<exppath>/sequences/<name>/`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    set_threads(run)
    path = run.expdir / run.expname / PARTS_DIR / name
    # a directory left by a dead worker or an interrupted run continues from its saved state (later rows dropped)
    resume = run.resume or (path / "frames.csv").exists()
    adapt_run(dataclasses.replace(run, workers=0, resume=resume), adapt, path, first, end)


def sequence_done(path: Path, frames: int) -> bool:
    """Whether the sequence run in `path` finished all its `frames` frames."""
    if not (path / "metrics.json").is_file():
        return False
    with open(path / "frames.csv", newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh)) == frames


def merge_sequences(exppath: Path, names: Sequence[str]) -> dict:
    """The sequences' rows and predictions, in stream order, into `exppath`'s frames.csv, results.npz and
    metrics.json (the files of a serial run); returns the summary."""
    rows, arrays = [], []
    for name in names:
        part = exppath / PARTS_DIR / name
        with open(part / "frames.csv", newline="") as fh:
            rows += list(csv.DictReader(fh))
        if (part / "results.npz").is_file():
            with np.load(part / "results.npz") as npz:
                arrays.append({key: npz[key] for key in npz.files})
    with atomic_path(exppath / "frames.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    if arrays:
        savez_atomic(exppath / "results.npz", {key: np.concatenate([a[key] for a in arrays]) for key in arrays[0]})
    summary = summarize(rows)
    write_json(exppath / "metrics.json", summary)
    return summary


def adapt_parallel(run: RunConfig, adapt: AdaptConfig, exppath: Path, ranges: Sequence[tuple[str, int, int]]
                   ) -> dict:
    """Adapt the unfinished sequences in `run.jobs` local processes (joblib) or on a dask cluster (`run.backend`),
    then, once all have finished, merge them all (each once, in stream order)."""
    todo = [r for r in ranges if not sequence_done(exppath / PARTS_DIR / r[0], r[2] - r[1])]
    logger.info("%d sequences, %d to adapt, backend %s, %d processes", len(ranges), len(todo), run.backend, run.jobs)
    tasks = [Task(name, adapt_sequence, (run, adapt, name, first, end)) for name, first, end in todo]
    raise_failures(run_tasks(tasks, run.backend, run.jobs, run.scheduler))
    return merge_sequences(exppath, [name for name, _, _ in ranges])


# ----------------------------------------------------------------------------------------------------------------


def write_run_record(run: RunConfig, adapt: AdaptConfig, paths: DataPaths, exppath: Path, extra: dict) -> None:
    """config.json: the resolved options and the provenance (base model and hash, body model, commit). On resume
    the recorded one is kept and checked (`datasets.runrecord.resume_record`); `run.overwrite` clears the old run."""
    record = {"run": config_to_dict(run), "adapt": config_to_dict(adapt), **extra,
              "provenance": provenance(paths.base_model, paths.smpl_model_dir / "SMPL_NEUTRAL.pkl")}
    record["git_commit"] = record["provenance"]["git_commit"]
    if record["provenance"]["synthetic_only"]:
        logger.warning("base model %s: %s", paths.base_model, SYNTHETIC_NOTE)
    if run.resume and (exppath / "config.json").is_file():
        record = resume_record(exppath / "config.json", record, run.allow_changed_options)
    elif run.overwrite and exppath.exists():
        logger.warning("--overwrite: removed %s from %s", ", ".join(clear_run(exppath)) or "nothing", exppath)
    exppath.mkdir(parents=True, exist_ok=True)
    write_json(exppath / "config.json", record)


def run_session(run: RunConfig, adapt: AdaptConfig) -> dict | None:
    """Check the assets, then adapt the stream into `<expdir>/<expname>` (or continue it with `run.resume`);
    returns the summary, None when a required file is missing or invalid (reported in the log), or {} when
    `run.check_assets` only asked for the check."""
    paths = DataPaths.from_root(run.data_root)
    if run.model_file is not None:  # check the checkpoint that will be read
        paths = dataclasses.replace(paths, base_model=run.model_file)
    from datasets.assets import check_assets, format_report, missing_required

    statuses = check_assets(paths, run.dataset, source_free=not adapt.retrieval)
    if missing_required(statuses):
        logger.error("missing or invalid files under %s:\n%s", paths.root, format_report(statuses))
        return None
    if run.check_assets:
        logger.info("assets under %s:\n%s", paths.root, format_report(statuses))
        return {}
    seed_everything(run.seed)
    set_threads(run)
    exppath = run.expdir / run.expname
    if holds_run(exppath) and not (run.resume or run.overwrite):
        raise RunExists(exppath)  # before any work: nothing of the run is touched
    img_res = input_size(paths.base_model, run.img_res)
    stream = build_stream(run, paths, img_res)
    end = len(stream) if run.max_frames <= 0 else min(len(stream), run.max_frames)
    write_run_record(run, adapt, paths, exppath, {"img_res": img_res, "frames": len(stream)})
    run = dataclasses.replace(run, img_res=img_res)  # the adaptors built below need not read the checkpoint again
    if run.jobs > 1 or run.backend == "dask":
        summary = adapt_parallel(run, adapt, exppath, sequence_ranges(stream_tracks(stream), end))
    else:
        summary = adapt_run(run, adapt, exppath, 0, end, stream)
    logger.info("%s: %d frames, %s", exppath, summary["frames"],
                ", ".join(f"{k} {v:.2f}" for k, v in summary.items() if isinstance(v, float)))
    return summary
