"""Reading pickled files without running code, and writing files atomically (docs/method.md §8).

A pickle names the functions and classes that rebuild its objects, so reading an untrusted one with `pickle.load`
can run anything. Every pickle-based format the project reads (SMPL `.pkl`, the GMM prior, joblib retrieval and
annotation files, 3DPW sequences, MoSh fits, the object entries of `.npz` files) goes through `restricted_load` or
`restricted_joblib_load` with an explicit allow-list of the globals that format needs; any other global stops the
read with `UnsafePickleError`, naming the file and the global, before it is imported or called. Torch files (HMR
checkpoints, the resume state) are read by `torch_load_tensors` (`weights_only=True`).

`atomic_path` is the one atomic write: callers write a temporary sibling, which is renamed over the target only
when the write finished (a crash leaves the old file or none, never half a file).

This module imports nothing of the project.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

Global = tuple[str, str]  # (module, name) as a pickle names it

# What pickled numpy arrays, dtypes and scalars name (numpy 1 writes `numpy.core`, mapped to `numpy._core` below),
# plus the Python 2 / 3 helpers of protocols 0-2 (`_codecs.encode` for bytes, copyreg for old-style classes).
NUMPY_GLOBALS: frozenset[Global] = frozenset({
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "array"),
    ("_codecs", "encode"),
})
# copyreg rebuilds instances of plain classes (protocol <= 2); safe while the class itself must be allowed.
COPYREG_GLOBALS: frozenset[Global] = frozenset({
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
})
# protocols <= 2 rebuild sets by calling the type on a list (chumpy's pickled state holds sets)
SET_GLOBALS: frozenset[Global] = frozenset({
    ("__builtin__", "set"), ("builtins", "set"), ("__builtin__", "frozenset"), ("builtins", "frozenset"),
})
# joblib stores each numpy array as a wrapper object followed by the raw bytes (read by joblib, not unpickled)
JOBLIB_GLOBALS: frozenset[Global] = NUMPY_GLOBALS | {("joblib.numpy_pickle", "NumpyArrayWrapper")}
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError,
                  UnicodeDecodeError)


class UnsafePickleError(ValueError):
    """A pickle names a global that its format does not need: it was refused, nothing of it was run."""


def _normalise(module: str) -> str:
    """numpy 1's `numpy.core.*` is numpy 2's `numpy._core.*`."""
    if module == "numpy.core" or module.startswith("numpy.core."):
        return "numpy._core" + module[len("numpy.core"):]
    return module


class GlobalGuard:
    """The allow-list check shared by the restricted unpicklers.

    Args:
        source: the file (for messages).
        what: the format, e.g. "SMPL model" (for messages).
        allowed: (module, name) pairs resolved normally.
        substitutes: module prefix -> callable(module, name) returning the object to use instead (e.g. a stub for
            every `chumpy.*` class), or None to refuse the name.
    """

    def __init__(self, source: Path | str, what: str, allowed: Collection[Global],
                 substitutes: Mapping[str, Callable[[str, str], Any]] | None = None) -> None:
        self.source, self.what = source, what
        self.allowed = frozenset(allowed)
        self.substitutes = dict(substitutes or {})

    def refuse(self, module: str, name: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"{self.source}: refused to read this {self.what}: it names {module}.{name}, which a {self.what} does "
            "not contain (a pickle can run code when read; only the allow-listed numpy / format objects are "
            "accepted). Is the file what it claims to be?")

    def resolve(self, module: str, name: str, default: Callable[[str, str], Any]) -> Any:
        """The object for `module.name`, from `default` (the unpickler's own lookup) when allowed."""
        module = _normalise(module)
        for prefix, substitute in self.substitutes.items():
            if module == prefix or module.startswith(prefix + "."):
                found = substitute(module, name)
                if found is None:
                    raise self.refuse(module, name)
                return found
        if (module, name) not in self.allowed:
            raise self.refuse(module, name)
        return default(module, name)


class RestrictedUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` that resolves globals only through a `GlobalGuard`."""

    def __init__(self, file: BinaryIO, guard: GlobalGuard, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)
        self.guard = guard

    def find_class(self, module: str, name: str) -> Any:
        return self.guard.resolve(module, name, super().find_class)


def _wrap_errors(guard: GlobalGuard, err: Exception) -> ValueError:
    reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
    return ValueError(f"{guard.source} is not a readable {guard.what} pickle ({reason})")


def restricted_load(source: Path | str | bytes, what: str, allowed: Collection[Global] = NUMPY_GLOBALS,
                    substitutes: Mapping[str, Callable[[str, str], Any]] | None = None,
                    name: str | None = None) -> Any:
    """Unpickle a file (or bytes) that may name only `allowed` globals (latin1, so Python 2 pickles read too).

    Args:
        source: a path, or the pickle's bytes (then `name` names it in messages).
        what: the format, for messages.
        allowed: (module, name) globals the format needs.
        substitutes: see `GlobalGuard`.
    Raises:
        UnsafePickleError: the pickle names another global (nothing was imported or called).
        ValueError: the bytes are not a readable pickle.
    """
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    guard = GlobalGuard(name or ("<bytes>" if isinstance(source, bytes) else source), what, allowed, substitutes)
    try:
        return RestrictedUnpickler(io.BytesIO(raw), guard).load()
    except UnsafePickleError:
        raise
    except _PICKLE_ERRORS as err:
        raise _wrap_errors(guard, err) from err


def restricted_joblib_load(path: Path | str, what: str, allowed: Collection[Global] = JOBLIB_GLOBALS) -> Any:
    """Read a `joblib.dump` file (plain or compressed) that may name only `allowed` globals.

    joblib's own unpickler is kept for the array bytes that follow each `NumpyArrayWrapper`; object arrays are
    nested pickles, which joblib resolves through the same `find_class`, so the allow-list covers them too.
    """
    from joblib.numpy_pickle import NumpyUnpickler
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    path = Path(path)
    guard = GlobalGuard(path, what, allowed)

    class _Guarded(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            return guard.resolve(module, name, super().find_class)

    try:
        with open(path, "rb") as fh, _validate_fileobject_and_memmap(fh, str(path), None) as (fobj, _):
            if isinstance(fobj, str):
                raise ValueError("written by joblib < 0.10 (arrays in companion files), which is not supported")
            return _Guarded(str(path), fobj, ensure_native_byte_order=True).load()
    except UnsafePickleError:
        raise
    except _PICKLE_ERRORS as err:
        raise _wrap_errors(guard, err) from err


def restricted_npz_load(path: Path | str, what: str, allowed: Collection[Global] = NUMPY_GLOBALS,
                        substitutes: Mapping[str, Callable[[str, str], Any]] | None = None) -> dict[str, Any]:
    """Every array of an `.npz`; object arrays (pickled inside the `.npy` member) go through `restricted_load`."""
    path = Path(path)
    out: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as npz, zipfile.ZipFile(path) as archive:
        for key in npz.files:
            try:
                out[key] = npz[key]
                continue
            except ValueError:  # an object array: a pickle after the .npy header
                pass
            with archive.open(key + ".npy") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                read_header(fh)
                out[key] = restricted_load(fh.read(), what, allowed, substitutes, name=f"{path}[{key}]")
    return out


def torch_load_tensors(path: Path | str, what: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU: tensors, numbers, strings and containers only.

    Raises:
        UnsafePickleError: the file holds any other object (torch refused it; nothing was run).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line or "global" in line), "")
        if not detail:  # torch's unpickler stopped on bytes that are no pickle at all: damaged, not dangerous
            raise ValueError(f"{path} is not a readable {what}: not a torch file, or a damaged one "
                             f"({_torch_reason(err)})") from err
        raise UnsafePickleError(
            f"{path}: refused to read this {what}: it holds objects other than tensors and plain containers, which "
            f"could run code when read ({detail[:200]})") from err
    except (EOFError, IndexError, KeyError, OverflowError, MemoryError, UnicodeDecodeError, RuntimeError, ValueError,
            TypeError, AttributeError) as err:
        # what torch raises on random or truncated bytes, depending on where they stop it
        raise ValueError(f"{path} is not a readable {what}: not a torch file, or a damaged one "
                         f"({type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]})") from err


def _torch_reason(err: Exception) -> str:
    """The line of torch's unpickling error that says what stopped it (not its advice about weights_only)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Please file", "Check the"))]
    return (useful or lines or [type(err).__name__])[0][:200]


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` when the block ends without an error.

    The temporary name is `.<name>.tmp<pid>` in the same folder (so the rename is atomic and parallel writers do
    not collide); it is removed when the block fails. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write `text` to `path` atomically (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, obj: Any) -> None:
    """Write `obj` as indented JSON atomically (`atomic_path`)."""
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def savez_atomic(path: Path | str, arrays: Mapping[str, Any]) -> None:
    """`np.savez` of `arrays` to `path` atomically (`atomic_path`); the name is kept as given (no `.npz` added)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
