"""The process's runtime: seeding, device choice and the checked-out git commit.

The thread environment (`OMP_WAIT_POLICY=PASSIVE` unless the user set it) is set once, in `config.py`, which every
program and package imports before torch: busy-waiting OpenMP threads collapse on a shared machine.

This module imports nothing of the project but config.
"""
from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from config import REPO_ROOT


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (and PYTHONHASHSEED for child processes)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; any other name as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def git_commit(repo: Path = REPO_ROOT) -> str | None:
    """The checked-out commit of `repo`, or None outside a git checkout."""
    try:
        result = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def set_threads(threads: int) -> None:
    """Use `threads` torch threads in this process (0 keeps torch's default)."""
    if threads:
        torch.set_num_threads(threads)
