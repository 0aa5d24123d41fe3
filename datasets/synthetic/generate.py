"""Build a whole synthetic data root: body model, both domains, the assembled npz files and the 3DPW preprocessing.

The root is laid out like a real one (`smpl/`, `J_regressor_*.npy`, `h36m/images/`, `dataset_extras/`,
`3dpw/imageFiles/`, `3dpw/sequenceFiles/test/`), so `DYNABOA_DATA=<root>` works for every program. A manifest
(`synthetic_world.json`) records the preset and seed; a rerun with the same ones resumes (finished units are
skipped), a rerun with other ones is refused rather than mixing two worlds.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm import tqdm

from config import DataPaths
from datasets.synthetic import domains as dom
from datasets.synthetic.world import (
    LabUnit,
    WildUnit,
    WorldContext,
    generate_lab_unit,
    generate_wild_unit,
    lab_part_path,
    world_paths,
)
from datasets.synthetic.writers import assemble_h36m_npz, pw3d_sequence_path
from utils.io import write_bytes_atomic

logger = logging.getLogger(__name__)

MANIFEST = "synthetic_world.json"
BODY_FILES = ("smpl/SMPL_NEUTRAL.pkl", "smpl/SMPL_MALE.pkl", "smpl/SMPL_FEMALE.pkl", "J_regressor_extra.npy",
              "J_regressor_h36m.npy")
Unit = LabUnit | WildUnit
_WORKER_CONTEXT: WorldContext | None = None  # one per worker process


def plan_units(preset: dom.Preset) -> list[Unit]:
    """Every unit of a preset: lab clips (training subjects, then held-out ones), then wild sequences."""
    units: list[Unit] = []
    for subjects, frames, split in ((preset.train_subjects, preset.train_frames, "train"),
                                    (preset.valid_subjects, preset.valid_frames, "valid")):
        units += [LabUnit(s, a, frames, split) for s in subjects for a in range(preset.actions)]
    return units + [WildUnit(i, preset.wild_frames) for i in range(preset.wild_sequences)]


def unit_done(paths: DataPaths, unit: Unit) -> bool:
    """Whether the unit's done marker exists."""
    if isinstance(unit, LabUnit):
        return lab_part_path(paths, unit).is_file()
    return pw3d_sequence_path(paths.pw3d_root, unit.name).is_file()


def run_unit(ctx: WorldContext, unit: Unit) -> str:
    """Generate one unit; returns its name."""
    (generate_lab_unit if isinstance(unit, LabUnit) else generate_wild_unit)(ctx, unit)
    return unit.name


def _check_manifest(root: Path, preset: str, seed: int) -> None:
    """Write the manifest, or refuse to continue a world made with another preset or seed."""
    want = {"preset": preset, "seed": seed, "format": 1}
    path = root / MANIFEST
    if path.is_file():
        have = json.loads(path.read_text())
        if have != want:
            raise ValueError(f"{root} holds a synthetic world made with {have}, not {want}: choose another --out "
                             "or delete that folder")
        return
    write_bytes_atomic(path, json.dumps(want).encode())


def ensure_body_model(root: Path, seed: int) -> None:
    """Write the procedural SMPL-format body unless all its files are there (through a temporary folder)."""
    if all((root / f).is_file() for f in BODY_FILES):
        return
    from datasets.synthetic.body_model import write_body_model

    tmp = root / ".body_tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_body_model(tmp, seed=seed)
    for name in BODY_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / name, root / name)
    shutil.rmtree(tmp)


def _init_worker(root: Path, seed: int, save_labels: bool) -> None:
    global _WORKER_CONTEXT
    torch.set_num_threads(1)
    _WORKER_CONTEXT = WorldContext(root, seed, save_labels)


def _worker_run(unit: Unit) -> str:
    assert _WORKER_CONTEXT is not None, "worker not initialised"
    return run_unit(_WORKER_CONTEXT, unit)


def _run_all(root: Path, seed: int, units: list[Unit], jobs: int, save_labels: bool) -> None:
    """Generate units in this process (jobs <= 1) or in `jobs` spawned workers, with a progress bar."""
    bar = tqdm(total=len(units), desc="synthetic world", unit="clip")
    if jobs <= 1:
        ctx = WorldContext(root, seed, save_labels)
        for unit in units:
            bar.set_postfix_str(run_unit(ctx, unit))
            bar.update()
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                 initargs=(root, seed, save_labels)) as pool:
            for future in as_completed([pool.submit(_worker_run, u) for u in units]):
                bar.set_postfix_str(future.result())
                bar.update()
    bar.close()


def generate_target(root: Path, seed: int, sequences: int | None = None, preset: str = "default",
                    jobs: int = 1) -> None:
    """Generate only the first `sequences` target (wild) sequences of the world `preset`/`seed` (all by default) into
    `root`, in this process or `jobs` workers; the body model and regressors must already be there (no source domain,
    no manifest, no 3DPW preprocessing)."""
    spec = dom.PRESETS[preset]
    count = spec.wild_sequences if sequences is None else sequences
    _run_all(Path(root).resolve(), seed, [WildUnit(i, spec.wild_frames) for i in range(count)], jobs, False)


def generate_world(out_root: Path, preset: str = "default", seed: int = 0, jobs: int = 1,
                   save_labels: bool = False, scale_factor: float = 1.0) -> dict[str, int]:
    """Generate (or finish) a synthetic data root.

    Args:
        out_root: the data root to write.
        preset: a key of `domains.PRESETS`.
        seed: the world's seed; every unit derives its own generator from it.
        jobs: worker processes (1: in this process).
        save_labels: also write the render label images under `<root>/labels/` (for tests and figures).
        scale_factor: box enlargement of the 3DPW preprocessing (1.0 as DynaBOA's script).
    Returns:
        counts: lab training and held-out images, target npz files, units generated by this call.
    """
    from datasets.preprocess.pw3d import preprocess_pw3d

    root = Path(out_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    _check_manifest(root, preset, seed)
    ensure_body_model(root, seed)
    paths = world_paths(root)
    units = plan_units(dom.PRESETS[preset])
    todo = [u for u in units if not unit_done(paths, u)]
    logger.info("%d of %d units to generate (%d already finished)", len(todo), len(units), len(units) - len(todo))
    _run_all(root, seed, todo, jobs, save_labels)
    counts = {"generated_units": len(todo)}
    for split in ("train", "valid"):
        parts = [lab_part_path(paths, u) for u in units if isinstance(u, LabUnit) and u.split == split]
        counts[f"h36m_{split}"] = assemble_h36m_npz(parts, paths.dataset_extras / f"h36m_{split}.npz")
    counts["pw3d_npz"] = len(preprocess_pw3d(paths.pw3d_root, paths.dataset_extras, paths, "test", scale_factor))
    logger.info("synthetic world at %s: %s", root, counts)
    return counts
