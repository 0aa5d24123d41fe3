"""Write the synthetic world: a procedural SMPL-format body, a Human3.6M-like source domain and a 3DPW-like target
domain in the real datasets' formats, then the 3DPW preprocessing, into one data root.

    python -m datasets.synthetic --out data/synthetic                     # default size, seed 0
    python -m datasets.synthetic --out /tmp/world --preset tiny --jobs 2
    python -m datasets.synthetic --describe                               # the domains as a markdown table

Afterwards `DYNABOA_DATA=data/synthetic` points every program at it. Rerunning the same command resumes an
interrupted run.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from datasets.synthetic.domains import PRESETS, describe_domains


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m datasets.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/synthetic"), help="data root to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help="size (default: default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world (default: 0)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--save-labels", action="store_true",
                        help="also write the render label images under <out>/labels/ (tests, figures)")
    parser.add_argument("--scale-factor", type=float, default=1.0,
                        help="box enlargement of the 3DPW preprocessing (default: 1.0 as DynaBOA's script)")
    parser.add_argument("--describe", action="store_true", help="print the domains' table and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.describe:
        print(describe_domains(args.preset), end="")
        return 0
    from tqdm.contrib.logging import logging_redirect_tqdm

    from datasets.synthetic.generate import generate_world

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with logging_redirect_tqdm():
        generate_world(args.out, args.preset, args.seed, args.jobs, args.save_labels, args.scale_factor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
