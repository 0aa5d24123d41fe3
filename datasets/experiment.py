"""The experiment folder of `run_on_internet.sh` (`OUT/NAME/`): what the project owns in it, and claiming it.

A folder is an experiment only when it holds the manifest `.dynaboa_manifest.json`, written when the script first
claimed it. The manifest lists the entries (files and folders directly in the folder) that belong to the project:
`input/`, the run's files, `export/` (a batch: `videos/`, `logs/`, the summaries). None of them may exist when a
folder is first claimed: a folder that holds one of these names without a manifest is refused, so the project never
writes over, nor later deletes, anything it did not create. Everything else in the folder (the user's video, notes)
is never touched: `--overwrite` removes exactly the listed entries.

Claiming takes an exclusive lock (`flock` on `.dynaboa.lock`, through a descriptor that the script's shell keeps
open for its whole run), so of two launches into one folder only one runs; the other is refused, nothing changed.
The manifest also records the options that shaped the files already made (frames, keypoints, tracks); `--resume`
with other values is refused rather than silently keeping the old files.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets.runrecord import RunError
from utils.io import write_json

MANIFEST = ".dynaboa_manifest.json"
LOCK = ".dynaboa.lock"
OWNED = {"video": ("input", "config.json", "frames.csv", "preds", "state.pt", "results.npz", "metrics.json",
                   "sequences", "export", "batch.json"),
         "batch": ("videos", "logs", "summary.md", "summary.json")}
KIND_WORDS = {"video": "a single-video experiment", "batch": "a batch experiment (--batch)"}


class ExperimentBusy(RunError):
    """Another launch holds the folder's lock."""


class ExperimentExists(RunError):
    """The folder holds an experiment and neither --resume nor --overwrite was given."""


class NoExperiment(RunError):
    """--resume was given for a folder that holds no experiment."""


@dataclass
class Claim:
    """The outcome of `claim`: the manifest now in force, the entries removed by --overwrite, and the entries of
    the folder that are not the project's (left alone)."""

    manifest: dict[str, Any]
    removed: list[str]
    others: list[str]


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, None when it has none."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RunError(f"{path} is unreadable ({err}); nothing was changed. It marks {folder} as an experiment of "
                       "this project: choose another --expname, or delete the folder by hand") from err
    if not isinstance(manifest, dict) or manifest.get("kind") not in OWNED:
        raise RunError(f"{path} is not a manifest of this project; nothing was changed: choose another --expname")
    return manifest


def is_experiment(folder: Path) -> bool:
    """Whether `folder` holds an experiment of this project (its manifest)."""
    return (Path(folder) / MANIFEST).is_file()


def lock(fd: int, folder: Path) -> None:
    """Take the folder's exclusive lock on descriptor `fd` (open on `<folder>/.dynaboa.lock`) without waiting."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        raise ExperimentBusy(f"{folder} is in use by another run_on_internet.sh launched into the same folder; "
                             "nothing was changed: wait for it to end, or choose another --expname") from err


def option_differences(recorded: dict[str, Any], current: dict[str, Any]) -> str:
    """`--min-size 250.0 -> 100.0, ...` for the options whose recorded and current values differ."""
    keys = sorted(set(recorded) | set(current))
    return ", ".join(f"--{k.replace('_', '-')} {recorded.get(k)!r} -> {current.get(k)!r}" for k in keys
                     if recorded.get(k) != current.get(k))


def claim(folder: Path, kind: str, mode: str, options: dict[str, Any]) -> Claim:
    """Claim `folder` (its lock is already held) for `kind` ("video" or "batch") with `mode` "new", "resume" or
    "overwrite"; returns what was found and done.

    Raises:
        ExperimentExists, NoExperiment: see the classes; RunError: the folder holds another kind of experiment,
            names the project would write that it did not create, or --resume with changed options.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    refuse(folder, manifest, kind, mode)
    if manifest is None:
        taken = [name for name in OWNED[kind] if (folder / name).exists() or (folder / name).is_symlink()]
        if taken:
            raise RunError(f"{folder} holds {', '.join(taken)}, which this project did not write (no {MANIFEST}); "
                           "nothing was changed: choose another --expname or --out, or move them away")
        manifest = {"program": "run_on_internet.sh", "kind": kind, "owned": list(OWNED[kind]), "options": options,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        _create(folder / MANIFEST, manifest)
        return Claim(manifest, [], _others(folder, manifest))
    if mode == "resume":
        diffs = option_differences(manifest.get("options", {}), options)
        if diffs:
            raise RunError(f"--resume refused: {diffs} (recorded in {folder / MANIFEST} -> now); the frames, "
                           "keypoints and tracks were made with the recorded values: rerun with them, or replace "
                           "the experiment with --overwrite")
        return Claim(manifest, [], _others(folder, manifest))
    removed = remove_owned(folder, manifest)
    manifest = {**manifest, "options": options, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(folder / MANIFEST, manifest)
    return Claim(manifest, removed, _others(folder, manifest))


def refuse(folder: Path, manifest: dict[str, Any] | None, kind: str, mode: str) -> None:
    """The refusals that depend only on the manifest (`manifest`, None when the folder has none): --resume of no
    experiment, another kind of experiment, an existing one with neither --resume nor --overwrite."""
    if manifest is None:
        if mode == "resume":
            raise NoExperiment(f"--resume: {folder} holds no experiment to continue (no {MANIFEST}); nothing was "
                               "changed")
        return
    if manifest["kind"] != kind:
        raise RunError(f"{folder} holds {KIND_WORDS[manifest['kind']]}, and this is {KIND_WORDS[kind]}; nothing "
                       "was changed: choose another --expname")
    if mode == "new":
        raise ExperimentExists(f"{folder} already holds an experiment; nothing was changed")


def precheck(folder: Path, kind: str, mode: str) -> None:
    """`refuse` before any work, reading only (`claim` checks again under the lock)."""
    refuse(Path(folder), read_manifest(folder) if Path(folder).is_dir() else None, kind, mode)


def remove_owned(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Delete the entries the manifest lists (what the project wrote); returns the names removed."""
    removed = []
    for name in manifest.get("owned", []):
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            continue  # a manifest names entries directly in the folder, never a path elsewhere
        target = Path(folder) / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        else:
            continue
        removed.append(name)
    return removed


def release_refused(folder: Path, created: Path | None) -> None:
    """After a refused first claim (no manifest): remove the lock file and the folders this launch created, if
    they are empty (a folder the user made, or one with anything in it, stays)."""
    folder = Path(folder)
    if is_experiment(folder):
        return
    (folder / LOCK).unlink(missing_ok=True)
    if created is None:
        return
    for path in [folder, *folder.parents]:
        try:
            path.rmdir()
        except OSError:
            return
        if path == Path(created):
            return


def _create(path: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest whole, and only if there is none yet (a hard link of a finished temporary file)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _others(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """The entries of the folder that are not the project's."""
    own = {MANIFEST, LOCK, *manifest.get("owned", [])}
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in own and ".tmp" not in p.name)
