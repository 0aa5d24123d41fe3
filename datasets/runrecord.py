"""What a run records about itself and checks before it continues: provenance, resume compatibility, user errors.

- `RunError`: a problem with the user's input or files, reported as one line (what, which file, what to do) by the
  command-line programs instead of a traceback; `RunExists` when an experiment name is already taken.
- `provenance`: the base model file and its sha256, the body model (official or the procedural stand-in), the
  project's commit, and whether the base model is the built-in synthetic-only demonstration model.
- `resume_differences`: the options that change results, compared with a run's recorded `config.json`.
- `rerun_command`: the exact command line that continues (`--resume`) or replaces (`--overwrite`) a run.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Sequence

from config import REPO_ROOT, AdaptConfig, config_to_dict

BUILTIN_ASSETS = REPO_ROOT / "data" / "synthetic_assets"
SYNTHETIC_NOTE = ("synthetic-only demonstration: the built-in base model was trained only on procedural synthetic "
                  "bodies, so meshes on real footage come out too large and stiff; use the original's licensed "
                  "basemodel.pt and SMPL files for real results")
# result-changing options a continued run cannot take up (its state holds the weights of one model and scope, and the
# generators seeded once): refused on --resume even with --allow-changed-options
FIXED_ON_RESUME = ("dataset", "model_file", "seed", "preset", "adapted", "reset_per_sequence")
# RunConfig options that change a run's results; the others (workers, device, chunk, max_frames, jobs, threads,
# where the run goes, resume flags) may differ between the parts of one run
RESULT_RUN_OPTIONS = ("dataset", "data_root", "model_file", "keypoints", "source_free", "img_res", "seed",
                      "focal_length", "preset", "adapted", "bf16", "channels_last", "reset_per_sequence")


class RunError(Exception):
    """A problem with the user's input or files; the programs print its message as one line and exit non-zero."""


class RunExists(RunError):
    """The run directory already holds a run and neither continuing nor replacing it was asked for."""

    def __init__(self, exppath: Path) -> None:
        super().__init__(f"{exppath} already holds a run; nothing was changed")
        self.exppath = exppath


def one_line(err: BaseException) -> str:
    """The last meaningful line of an error message (a DataLoader worker's error carries the whole traceback)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    last = lines[-1]
    prefix = f"{type(err).__module__}.{type(err).__name__}: "
    return last.removeprefix(prefix).removeprefix(f"{type(err).__name__}: ")


# set by run_on_internet.sh for the programs it runs: {"program": ["bash", script], "args": [its arguments]}, so
# that a command printed to continue or replace a run is the script's (the user's command), not the inner program's
RERUN_ENV = "DYNABOA_RERUN"


def rerun_command(argv: Sequence[str], flag: str | None, program: Path | str) -> str:
    """`python <program> <argv>` with `--resume` / `--overwrite` replaced by `flag` (none when None), quoted for a
    POSIX shell; under run_on_internet.sh (`RERUN_ENV`) the script's own command with `flag` first."""
    caller = _caller_command()
    if caller is not None:
        words, args = caller
        kept = [a for a in args if a not in ("--resume", "--overwrite")]
        return shlex.join([*words, *([flag] if flag else []), *kept])
    return python_command(program, [a for a in argv if a not in ("--resume", "--overwrite")] + ([flag] if flag else []))


def python_command(program: Path | str, args: Sequence[str]) -> str:
    """`<this python> <program> <args>` quoted for a POSIX shell, the program relative to the current folder when
    it is near (so that the command works as printed, from where the user is)."""
    program = os.path.relpath(program) if not os.path.relpath(program).startswith("../..") else str(program)
    return shlex.join([sys.executable, program, *args])


def _caller_command() -> tuple[list[str], list[str]] | None:
    """(program words, arguments) of the command in `RERUN_ENV`, None when unset or unreadable."""
    import json

    try:
        spec = json.loads(os.environ.get(RERUN_ENV, ""))
        words, args = [str(w) for w in spec["program"]], [str(a) for a in spec["args"]]
    except (ValueError, KeyError, TypeError):
        return None
    return words, args


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_builtin_model(path: Path) -> bool:
    """Whether `path` holds the committed synthetic base model (same bytes as data/synthetic_assets/basemodel.pt)."""
    builtin = BUILTIN_ASSETS / "basemodel.pt"
    path = Path(path)
    if not (path.is_file() and builtin.is_file()) or path.stat().st_size != builtin.stat().st_size:
        return False
    return sha256(path) == sha256(builtin)


def body_model_kind(smpl_file: Path) -> str:
    """"official SMPL" or "procedural SMPL-format stand-in" (the synthetic world's body has no pose correctives)."""
    import numpy as np

    from models.smpl import load_smpl_model_data

    try:
        posedirs = np.asarray(load_smpl_model_data(smpl_file)["posedirs"])
    except Exception as err:  # any unreadable file is described, not raised: provenance only records
        return f"unreadable ({type(err).__name__})"
    return "official SMPL" if np.abs(posedirs).max() > 0 else "procedural SMPL-format stand-in (synthetic world)"


def provenance(model_file: Path, smpl_file: Path) -> dict[str, Any]:
    """The record of what produced a run's results (written into config.json and every export)."""
    from utils.runtime import git_commit

    model_file, smpl_file = Path(model_file).resolve(), Path(smpl_file).resolve()
    out: dict[str, Any] = {"base_model": str(model_file), "base_model_sha256": sha256(model_file),
                           "body_model": str(smpl_file),
                           "body_model_sha256": sha256(smpl_file) if smpl_file.is_file() else None,
                           "body_model_kind": body_model_kind(smpl_file), "git_commit": git_commit(REPO_ROOT),
                           "synthetic_only": is_builtin_model(model_file)}
    if out["synthetic_only"]:
        out["note"] = SYNTHETIC_NOTE
    return out


def resume_differences(recorded: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (recorded, now) of every result-changing option that differs between two config.json records.

    Compared: the adaptation settings, the run options of `RESULT_RUN_OPTIONS`, the crop size and the number of
    frames of the input stream (a changed input)."""
    diffs: dict[str, tuple[Any, Any]] = {}
    defaults = config_to_dict(AdaptConfig())
    for key in sorted(set(recorded.get("adapt", {})) | set(current.get("adapt", {}))):
        # an option added to the code after the run was recorded, left at its default, changes nothing
        old = recorded.get("adapt", {}).get(key, defaults.get(key))
        new = current.get("adapt", {}).get(key)
        if old != new:
            diffs[key] = (old, new)
    for key in RESULT_RUN_OPTIONS:
        old, new = recorded.get("run", {}).get(key), current.get("run", {}).get(key)
        if old != new:
            diffs[key] = (old, new)
    for key in ("img_res", "frames"):
        if recorded.get(key) != current.get(key):
            diffs[key] = (recorded.get(key), current.get(key))
    return diffs


def format_differences(diffs: dict[str, tuple[Any, Any]]) -> str:
    """`lr 3e-06 -> 1e-05, seed 22 -> 1` (recorded -> now)."""
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in diffs.items())


# files and folders of a run directory (`--overwrite` removes these; an internet run's input/ is not among them)
RUN_OUTPUTS = ("frames.csv", "preds", "state.pt", "results.npz", "metrics.json", "config.json", "sequences", "export")


def holds_run(exppath: Path) -> bool:
    """Whether `exppath` holds (part of) a run: its frames.csv or its parallel sequences."""
    return (Path(exppath) / "frames.csv").exists() or (Path(exppath) / "sequences").exists()


def clear_run(exppath: Path) -> list[str]:
    """Delete the run files of `exppath` (asked for with `--overwrite`); returns the names removed."""
    import shutil

    removed = []
    for name in RUN_OUTPUTS:
        target = Path(exppath) / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            continue
        removed.append(name)
    return removed


def resume_record(config_file: Path, current: dict[str, Any], allow_changed: bool) -> dict[str, Any]:
    """The config.json to keep when a run continues: the recorded one, with the options that do not change results
    taken from `current`.

    Raises:
        RunError: a result-changing option differs from the recorded one (all differences listed) and
            `allow_changed` is off; config.json is left as it was.
    """
    import json

    try:
        recorded = json.loads(Path(config_file).read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"{config_file} is unreadable ({err}); the run cannot be checked for --resume: start it "
                       "again with --overwrite") from err
    diffs = resume_differences(recorded, current)
    fixed = [key for key in FIXED_ON_RESUME if key in diffs]
    if fixed and allow_changed:
        raise RunError(f"--allow-changed-options cannot change {', '.join(fixed)} on --resume: the resume state "
                       f"fixes them (the adapted weights and the random generators), so the change would have no "
                       f"effect ({format_differences({k: diffs[k] for k in fixed})}); start the run again with "
                       "--overwrite")
    if diffs and not allow_changed:
        raise RunError(f"--resume refused: options that change results differ from {config_file} (recorded -> now): "
                       f"{format_differences(diffs)}; rerun with the recorded values, or add "
                       "--allow-changed-options to continue anyway (recorded in config.json), or --overwrite")
    out = dict(recorded)
    out["run"] = {**current["run"], **{k: v for k, v in recorded.get("run", {}).items() if k in RESULT_RUN_OPTIONS}}
    if diffs:
        overrides = list(recorded.get("resume_overrides", []))
        overrides.append({key: {"recorded": old, "now": new} for key, (old, new) in diffs.items()})
        out["resume_overrides"] = overrides
    return out


class DiskFull(RunError):
    """The disk filled (or a file-size limit was reached) while a run file was written; the atomic write left no
    temporary file behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no space left on the disk, or the file-size limit (ulimit -f) reached, while writing "
                         f"{path} (no partial file was left); free some space or raise the limit, then continue the "
                         "run with --resume")


def is_disk_full(err: BaseException) -> bool:
    """An OSError ENOSPC / EDQUOT / EFBIG (a file-size limit), or torch's stream-writer failure (how `torch.save`
    reports them: `[enforce fail at inline_container.cc] unexpected pos`, `PytorchStreamWriter failed writing`)."""
    import errno

    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (("write" in text and "fail" in text) or "unexpected pos" in text
                                              or "inline_container" in text)


OS_ERROR_HINTS = {"EACCES": "check its permissions, or choose another folder",
                  "EPERM": "check its permissions, or choose another folder",
                  "EROFS": "the file system is read-only: choose a folder on a writable one",
                  "ENOENT": "check the path", "ENOTDIR": "check the path", "EISDIR": "check the path",
                  "ECONNREFUSED": "check the address and that the service is running",
                  "EHOSTUNREACH": "check the address and the network", "ETIMEDOUT": "check the address and the network"}


def os_error_line(err: OSError) -> str:
    """One line for an operating-system error: what failed, on which path or address, and what to do."""
    import errno

    code = errno.errorcode.get(err.errno or -1, "")
    where = f" {err.filename}" + (f" -> {err.filename2}" if err.filename2 else "") if err.filename else ""
    what = err.strerror or one_line(err)
    hint = OS_ERROR_HINTS.get(code, "check the path named here, then run the command again" if where else
                              "check the address and that the service is running, then run the command again")
    return f"{what}:{where}; {hint}" if where else f"{what}; {hint}"


@contextlib.contextmanager
def naming_full_disk(path: Path) -> Iterator[None]:
    """Turn a full disk inside the block into `DiskFull(path)`; any other error passes unchanged."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        if is_disk_full(err):
            raise DiskFull(path) from err
        raise
