"""A data root made of the project's built-in assets, for internet-video and webcam runs in a fresh clone.

Without the licensed files (the original's `basemodel.pt`, SMPL), `run_on_internet.sh` and `dynaboa_webcam.py` fall
back to `data/builtin/`: copies of the committed synthetic base model and priors (`data/synthetic_assets/`) and the
procedural SMPL-format body with its regressors (`datasets.synthetic`). Such runs are a demonstration only
(`datasets.runrecord.SYNTHETIC_NOTE`): they warn at start and record it in the run.

    python -m datasets.builtin_assets          # writes data/builtin/ once, prints its path (and the warning)
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from config import REPO_ROOT, DataPaths
from datasets.runrecord import BUILTIN_ASSETS, SYNTHETIC_NOTE

logger = logging.getLogger(__name__)

BUILTIN_ROOT = Path(os.environ.get("DYNABOA_BUILTIN_ROOT", REPO_ROOT / "data" / "builtin"))  # tests redirect it
ASSET_FILES = ("basemodel.pt", "smpl_mean_params.npz", "gmm_08.pkl")


def builtin_data_root(root: Path = BUILTIN_ROOT) -> Path:
    """Write (once) and return a data root holding the built-in model, priors and procedural body."""
    from datasets.synthetic.generate import ensure_body_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in ASSET_FILES:
        target = root / name
        if not target.is_file():
            tmp = target.with_name(f".{name}.tmp{os.getpid()}")
            shutil.copyfile(BUILTIN_ASSETS / name, tmp)
            os.replace(tmp, target)
    ensure_body_model(root, seed=0)
    return root


def needs_builtin(data_root: Path | None, purpose: str = "internet") -> bool:
    """True when no data root was chosen (no argument, no $DYNABOA_DATA) and the default one lacks a required
    model file (the input folder itself is not asked for)."""
    if data_root is not None or os.environ.get("DYNABOA_DATA"):
        return False
    from datasets.assets import check_assets, missing_required

    statuses = check_assets(DataPaths.from_root(), purpose, source_free=True)
    return any(s.name != "internet root" for s in missing_required(statuses))


def warn_builtin(root: Path) -> str:
    """The one warning line of a run on the built-in assets (logged and returned)."""
    line = f"no licensed model files found: running on the built-in assets in {root}; {SYNTHETIC_NOTE}"
    logger.warning("%s", line)
    return line


def main() -> int:
    """Write the built-in data root, print its path on stdout and the warning on stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    root = builtin_data_root()
    warn_builtin(root)
    print(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
