"""Data preparation: raw datasets -> the npz files a run reads, and a check of every asset a run needs.

    python process_data.py --dataset h36m --root /data/h36m --subjects S1 S5 --step 5
    python process_data.py --dataset internet --format alphapose
    python process_data.py --dataset 3dpw
    python process_data.py --check-assets --for internet

Each `--dataset` is a module of `datasets/preprocess/` with `add_arguments(parser)` and `run(args) -> int`, imported
only when chosen; `python process_data.py --dataset h36m --help` lists that module's options.
"""
from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from config import DataPaths, add_dataclass_arguments, config_from_namespace
from datasets.assets import PURPOSES, check_assets, format_report, missing_required

PREPROCESSORS = {  # --dataset value -> module with add_arguments(parser) and run(args) -> int
    "3dpw": "datasets.preprocess.pw3d",
    "h36m": "datasets.preprocess.h36m",
    "internet": "datasets.preprocess.internet",
}


def _base_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Prepare data for DynaBOA or check the assets.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--dataset", choices=sorted(PREPROCESSORS), help="raw dataset to convert")
    action.add_argument("--check-assets", action="store_true", help="list every file a run needs and its state")
    check = parser.add_argument_group("--check-assets")
    check.add_argument("--for", dest="purpose", choices=PURPOSES, default="3dpw", help="the run to check for")
    check.add_argument("--source-free", action="store_true",
                       help="the run uses no Human3.6M retrieval (its files are then not needed)")
    check.add_argument("--data-root", type=Path, default=None, help="data root (default: $DYNABOA_DATA or data/)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, ModuleType | None]:
    """Parse the command line; returns the options and the chosen preprocessing module (None for --check-assets)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--dataset")
    known, _ = pre.parse_known_args(argv)
    parser = _base_parser()
    module = None
    if known.dataset in PREPROCESSORS:
        module = importlib.import_module(PREPROCESSORS[known.dataset])
        add_dataclass_arguments(parser, module.CONFIG, f"--dataset {known.dataset}")
    return parser.parse_args(argv), module


def check_assets_main(args: argparse.Namespace) -> int:
    """Print the asset table; 1 if a required asset is missing or invalid."""
    statuses = check_assets(DataPaths.from_root(args.data_root), args.purpose, source_free=args.source_free)
    print(format_report(statuses))
    bad = missing_required(statuses)
    if bad:
        logging.getLogger("process_data").error("%d required asset(s) missing or invalid: %s", len(bad),
                                                ", ".join(s.name for s in bad))
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen preprocessing or the asset check; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args, module = parse_args(argv)
    if module is None:
        return check_assets_main(args)
    try:
        return int(module.run(config_from_namespace(module.CONFIG, args), args.data_root))
    except (ValueError, FileNotFoundError) as err:  # a bad or missing input file: one line naming it
        logging.getLogger("process_data").error("%s", err)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
