"""DynaBOA online adaptation on a test stream: 3DPW (with metrics) or internet videos.

    python dynaboa.py --dataset 3dpw --expname 3dpw                        # the paper's protocol (#PS, GT 2D)
    DYNABOA_DATA=data/synthetic python dynaboa.py --dataset 3dpw --source-free --keypoints op_j2d
    python dynaboa.py --dataset 3dpw --preset fast --reset-per-sequence --jobs 2     # sequences in parallel
    python dynaboa.py --dataset 3dpw --preset finetune --lr-scale 3     # what the synthetic validation world chose

The original's spellings work too (`--use_boa 1 --dynamic_boa 1 --optim_steps 7 --model_file data/basemodel.pt`).
A run directory `<expdir>/<expname>/` receives the resolved config, one CSV row per frame as frames finish, chunks
of predictions and, at each chunk's end, the state that `--resume` continues from; `metrics.json` at the end. The
work is done by `pipelines.session`; this file is its command line.

The original adapts one continuous stream. `--reset-per-sequence` starts every sequence (the track name before ":",
e.g. `3dpw_25`; the persons of a sequence share its scene, so adaptation carries over between them) from the base
model with a seed derived from the sequence name, and then `--jobs N` adapts sequences in N processes through joblib,
or `--backend dask` on a dask.distributed cluster (`--scheduler tcp://HOST:8786`, or a local cluster of `--jobs`
workers; see `pipelines/cluster.py` for the commands on real machines). A sequence whose worker dies is run again,
continuing from its saved state. Each sequence writes its own run under
`sequences/<name>/` (resumable on its own); they are merged into the same files, in stream order, identical to the
serial run given the same `--threads`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from config import AdaptConfig, build_parser, config_from_namespace
from datasets.runrecord import (
    RERUN_ENV,
    DiskFull,
    RunError,
    RunExists,
    holds_run,
    is_disk_full,
    one_line,
    os_error_line,
    rerun_command,
)
from pipelines.session import IGNORED_ORIGINAL_OPTIONS, RunConfig, resolve_adapt, run_session


def parse_args(argv: Sequence[str] | None = None) -> tuple[RunConfig, AdaptConfig]:
    parser = build_parser(__doc__.splitlines()[0], [(RunConfig, "run"), (AdaptConfig, "adaptation")])
    for name in IGNORED_ORIGINAL_OPTIONS:
        parser.add_argument(name, default=None, help="accepted for compatibility; no effect")
    ns = parser.parse_args(argv)
    run, adapt = config_from_namespace(RunConfig, ns), config_from_namespace(AdaptConfig, ns, ns.config)
    if run.batch_size != 1:
        parser.error("adaptation runs one frame at a time: --batch_size must be 1")
    if run.resume and run.overwrite:
        parser.error("--resume continues a run and --overwrite replaces it: give one of them")
    if run.jobs > 1 and not run.reset_per_sequence:
        parser.error("--jobs N > 1 adapts sequences in parallel and needs --reset-per-sequence: one continuous "
                     "stream cannot be split")
    if run.backend == "dask" and not run.reset_per_sequence:
        parser.error("--backend dask distributes sequences and needs --reset-per-sequence")
    if run.dataset == "internet" and run.kp_confidence != "binary":
        parser.error("--kp-confidence applies to 3DPW; internet tracks carry the weights their preprocessing wrote: "
                     "python process_data.py --dataset internet --confidence weights --overwrite")
    if run.passes > 1 and (run.resume or run.reset_per_sequence):
        parser.error("--passes N > 1 adapts over the whole stream N times and is not resumable, nor split into "
                     "sequences: run it without --resume and --reset-per-sequence (--overwrite starts it again)")
    if run.scheduler and run.backend != "dask":
        parser.error("--scheduler is the address of a dask scheduler: add --backend dask")
    return run, resolve_adapt(run, adapt, explicit=vars(ns))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the session; a user error, a full disk or Ctrl-C ends in one line (with the command that continues or
    replaces the run) and a non-zero exit."""
    argv = list(sys.argv[1:] if argv is None else argv)
    run, adapt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if run.resume and not run.check_assets and not holds_run(run.expdir / run.expname):
        print(f"dynaboa.py: error: --resume: {run.expdir / run.expname} holds no run to continue; nothing was done. "
              f"Start it: {rerun_command(argv, None, __file__)}", file=sys.stderr)
        return 1
    try:
        summary = run_session(run, adapt)
    except KeyboardInterrupt:
        print(f"\ndynaboa.py: interrupted; the run continues from its last saved chunk with: "
              f"{rerun_command(argv, continue_flag(run.expdir / run.expname), __file__)}", file=sys.stderr)
        return 130
    except RunExists as err:
        print(f"dynaboa.py: error: {err}. Continue it: {rerun_command(argv, '--resume', __file__)}   or replace it: "
              f"{rerun_command(argv, '--overwrite', __file__)}", file=sys.stderr)
        return 1
    except (RunError, OSError, RuntimeError) as err:
        found = error_line(err, run.expdir / run.expname)
        if found is None:
            raise  # a fault of the program, not of the input or the machine: the traceback is wanted
        message, full = found
        if full:  # what was saved is kept: the same command continues (or starts) the run once there is room
            message += f": {rerun_command(argv, continue_flag(run.expdir / run.expname), __file__)}"
        print(f"dynaboa.py: error: {message}", file=sys.stderr)
        return 1
    return 0 if summary is not None else 1


def continue_flag(exppath: Path) -> str | None:
    """`--resume` when there is a run to continue (under run_on_internet.sh: always, its --resume continues any of
    its stages), else None: the same command starts it."""
    return "--resume" if os.environ.get(RERUN_ENV) or holds_run(exppath) else None


def error_line(err: BaseException, exppath: Path) -> tuple[str, bool] | None:
    """(one line, whether the disk was full) for an error of the user's input, files or machine; None otherwise."""
    if isinstance(err, DiskFull):
        return one_line(err), True
    if is_disk_full(err):
        return one_line(DiskFull(getattr(err, "filename", None) or exppath)), True
    if isinstance(err, RunError):
        return one_line(err), False
    if isinstance(err, OSError):
        return os_error_line(err), False
    return None


if __name__ == "__main__":
    raise SystemExit(main())
