"""The Python half of `run_on_internet.sh`: its options checked before any work, the claim of the experiment
folder, and the stages run so that Ctrl-C or a machine's error ends in one line with a command that works.

    eval "$(python -m pipelines.own_video plan SCRIPT ARGS...)"     # options -> shell variables, or one error line
    python -m pipelines.own_video claim RUN --kind video --mode new --lock-fd 9 --options JSON
    python -m pipelines.own_video run vid2img.py ARGS...            # a stage (a program file or -m MODULE)

`plan` validates every option of the script (and refuses, after `--`, the options the script sets itself) and prints
shell assignments (quoted with `shlex.quote`, so that any file name survives). `claim` takes the folder's lock and
its manifest (`datasets.experiment`). `run` runs a program in this process: Ctrl-C prints the script's own resume
command (`datasets.runrecord.RERUN_ENV`), an operating-system error one line naming the path.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

PROG = "run_on_internet.sh"
# dynaboa.py options the script sets itself: given after `--` they would send the run elsewhere than the exports
OWN_OPTIONS = ("--dataset", "--expdir", "--expname", "--data-root", "--data_root", "--check-assets", "--check_assets")


def positive(kind: type):
    """An argparse type: a number of `kind` (int or float) above 0."""
    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return check


def script_parser() -> argparse.ArgumentParser:
    """The script's own options (those before `--`), as its header documents them."""
    parser = argparse.ArgumentParser(prog=PROG, allow_abbrev=False, add_help=False,
                                     usage=f"bash {PROG} [options] VIDEO... [-- dynaboa.py options]  (--help)")
    parser.add_argument("videos", nargs="*")
    parser.add_argument("--out", default="exps")
    parser.add_argument("--expname", default=None)
    parser.add_argument("--data-root", default="")
    parser.add_argument("--every", type=positive(int), default=1)
    parser.add_argument("--min-size", type=positive(float), default=250.0)
    parser.add_argument("--multi-person", action="store_true")
    parser.add_argument("--obj", action="store_true")
    parser.add_argument("--no-video", action="store_true")
    parser.add_argument("--batch", default="")
    parser.add_argument("--jobs", type=positive(int), default=2)
    parser.add_argument("--backend", choices=("local", "dask"), default="local")
    parser.add_argument("--scheduler", default="")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    return parser


def parse_script_args(argv: Sequence[str]) -> argparse.Namespace:
    """The script's options and the dynaboa.py options after `--` (`extra`), checked; argparse's error otherwise."""
    parser = script_parser()
    cut = list(argv).index("--") if "--" in argv else len(argv)
    ns = parser.parse_args(argv[:cut])
    extra = list(argv[cut + 1:])
    for flag in ("--resume", "--overwrite"):  # the older spelling `-- --resume` still works
        if flag in extra:
            setattr(ns, flag[2:], True)
            extra = [a for a in extra if a != flag]
    ns.extra = extra
    check_script_args(parser, ns)
    return ns


def check_script_args(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    """Everything that can be told wrong before any work: conflicting options, missing inputs, a bad name."""
    if ns.batch and ns.videos:
        parser.error("give videos or --batch DIR_OR_LIST, not both")
    if not ns.batch and not ns.videos:
        parser.error("give at least one video (or --batch DIR_OR_LIST)")
    if ns.resume and ns.overwrite:
        parser.error("give --resume or --overwrite, not both")
    if ns.scheduler and ns.backend != "dask":
        parser.error("--scheduler is the address of a dask scheduler: add --backend dask")
    ns.expname = ns.expname if ns.expname is not None else "batch" if ns.batch else "internet"
    if ns.expname in ("", ".", "..") or "/" in ns.expname:
        parser.error(f"--expname must be a plain name, got {ns.expname!r}")
    for video in ns.videos:
        if not Path(video).is_file():
            parser.error(f"video file {video} not found" if not Path(video).exists() else f"{video} is not a file")
        if not os.access(video, os.R_OK):
            parser.error(f"cannot read the video {video}: check its permissions")
    if ns.batch and not Path(ns.batch).exists():
        parser.error(f"--batch: {ns.batch} not found (a folder of videos, or a text file with one path a line)")
    if ns.data_root and not Path(ns.data_root).is_dir():
        parser.error(f"--data-root: {ns.data_root} is not a folder")
    own = [a for a in ns.extra if a.split("=", 1)[0] in OWN_OPTIONS]
    if own:
        parser.error(f"{', '.join(own)} after `--`: the script sets these itself; give --out, --expname and "
                     "--data-root before `--`")


def plan(script: str, argv: Sequence[str]) -> dict[str, str | list[str]]:
    """The shell variables of run_on_internet.sh (see the module's docstring), from its arguments."""
    from utils.video import video_names

    ns = parse_script_args(argv)
    run = os.path.join(ns.out, ns.expname)
    options = {"every": ns.every, "min_size": ns.min_size, "multi_person": ns.multi_person}
    options.update({"source": str(Path(ns.batch).resolve())} if ns.batch else
                   {"videos": [str(Path(v).resolve()) for v in ns.videos]})
    passed = [f"--option={a}" for a in (["--every", str(ns.every), "--min-size", f"{ns.min_size:g}"]
                                        + ["--multi-person"] * ns.multi_person + ["--obj"] * ns.obj
                                        + ["--no-video"] * ns.no_video)]
    values: dict[str, str | list[str]] = {
        "OUT": ns.out, "NAME": ns.expname, "RUN": run, "DATA_ROOT": ns.data_root, "EVERY": str(ns.every),
        "MIN_SIZE": f"{ns.min_size:g}", "MULTI": ["--multi-person"] * ns.multi_person,
        "EXPORT": ["--obj"] * ns.obj + ["--no-video"] * ns.no_video, "VIDEOS": list(ns.videos),
        "NAMES": video_names(ns.videos), "EXTRA": ns.extra, "BATCH": ns.batch, "JOBS": str(ns.jobs),
        "BACKEND": ns.backend, "SCHEDULER": ns.scheduler, "PASS": passed, "KIND": "batch" if ns.batch else "video",
        "MODE": "resume" if ns.resume else "overwrite" if ns.overwrite else "new", "OPTIONS": json.dumps(options),
        "RESUME": "1" if ns.resume else "", "DYNABOA_RERUN": json.dumps({"program": ["bash", script],
                                                                         "args": list(argv)}),
        "START_COMMAND": shlex.join(["bash", script, *argv]),
        "RESUME_COMMAND": shlex.join(["bash", script, "--resume",
                                      *[a for a in argv if a not in ("--resume", "--overwrite")]])}
    return values


def to_shell(values: dict[str, str | list[str]]) -> str:
    """Bash assignments (arrays for lists), every value quoted so that any file name survives `eval`."""
    lines = []
    for key, value in values.items():
        quoted = " ".join(shlex.quote(v) for v in value) if isinstance(value, list) else shlex.quote(value)
        lines.append(f"{key}=({quoted})" if isinstance(value, list) else f"{key}={quoted}")
    return "\n".join(lines) + "\n"


def plan_main(script: str, argv: Sequence[str]) -> int:
    """Print the script's variables; an existing experiment (or none to --resume) is refused here, before any work
    (and again under the lock when the folder is claimed)."""
    from datasets.experiment import precheck
    from datasets.runrecord import RERUN_ENV, RunError

    values = plan(script, argv)
    os.environ[RERUN_ENV] = str(values["DYNABOA_RERUN"])
    try:
        precheck(Path(str(values["RUN"])), str(values["KIND"]), str(values["MODE"]))
    except (RunError, OSError) as err:
        print(refusal(err), file=sys.stderr)
        return 1
    sys.stdout.write(to_shell(values))
    return 0


def claim_main(args: argparse.Namespace) -> int:
    """Lock and claim the experiment folder; one line and exit 1 when refused."""
    from datasets.experiment import ExperimentBusy, ExperimentExists, claim, lock, release_refused
    from datasets.runrecord import RunError

    folder = Path(args.run)
    try:
        lock(args.lock_fd, folder)
    except ExperimentBusy as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    try:
        done = claim(folder, args.kind, args.mode, json.loads(args.options))
    except (RunError, OSError) as err:
        if not isinstance(err, ExperimentExists):
            release_refused(folder, Path(args.created) if args.created else None)
        print(refusal(err), file=sys.stderr)
        return 1
    if done.removed:
        print(f"{PROG}: --overwrite: removed {', '.join(done.removed)} from {folder} (what this project wrote "
              "there, as its manifest lists)", file=sys.stderr)
    if done.others:
        print(f"{PROG}: {folder} also holds {', '.join(done.others[:5])}{' ...' if len(done.others) > 5 else ''}, "
              "which are not the project's: they are left alone (never deleted)", file=sys.stderr)
    return 0


def refusal(err: BaseException) -> str:
    """The one line of a refused claim, with the commands that continue, replace or start the experiment (the
    script's own, from `RERUN_ENV`)."""
    from datasets.experiment import ExperimentExists, NoExperiment
    from datasets.runrecord import rerun_command

    if isinstance(err, ExperimentExists):
        return (f"{PROG}: {err}. Continue it: {rerun_command([], '--resume', PROG)}  or replace it: "
                f"{rerun_command([], '--overwrite', PROG)}")
    if isinstance(err, NoExperiment):
        return f"{PROG}: error: {err}. Start it: {rerun_command([], None, PROG)}"
    return f"{PROG}: error: {error_text(err)}"


def error_text(err: BaseException) -> str:
    from datasets.runrecord import RunError, one_line, os_error_line

    return os_error_line(err) if isinstance(err, OSError) and not isinstance(err, RunError) else one_line(err)


def run_program(argv: Sequence[str]) -> int:
    """Run a program (`file.py ARGS` or `-m module ARGS`) in this process as `python` would; its exit status."""
    module = argv[0] == "-m"
    target, args = (argv[1], argv[2:]) if module else (argv[0], argv[1:])
    sys.argv = [target, *args]
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 1
    return 0


def run_stage(argv: Sequence[str]) -> int:
    """`run_program`; Ctrl-C and operating-system errors end in one line (the script's resume command; the path and
    what to do) instead of a traceback."""
    try:
        return run_program(argv)
    except KeyboardInterrupt:
        from datasets.runrecord import rerun_command

        print(f"\n{PROG}: interrupted; what is finished is kept. Continue with: "
              f"{rerun_command([], '--resume', PROG)}", file=sys.stderr)
        return 130
    except OSError as err:
        from datasets.runrecord import DiskFull, is_disk_full, rerun_command

        text = f"{DiskFull(err.filename or 'a file')}: {rerun_command([], '--resume', PROG)}" if is_disk_full(
            err) else error_text(err)
        print(f"{PROG}: error: {text}", file=sys.stderr)
        return 1


def prepare(base: Sequence[str], extra: Sequence[str]) -> tuple[int, str]:
    """Before the folder is claimed: the data root (the built-in assets when there are no licensed files and none
    was chosen), co-training as the original when the Human3.6M retrieval files pass the asset check (else
    source-free), then dynaboa.py's own check of its options and files. Returns (status, shell assignments of
    DYNABOA_DATA and SOURCE); on a failure the reason went to stderr (one line for a bad option)."""
    import contextlib
    import io

    from config import REPO_ROOT, DataPaths
    from datasets.assets import check_assets, missing_required
    from datasets.builtin_assets import builtin_data_root, needs_builtin, warn_builtin

    out = ""
    if needs_builtin(None):
        root = builtin_data_root()
        warn_builtin(root)  # the one warning line (no handler configured yet: logging's last resort prints it)
        os.environ["DYNABOA_DATA"] = str(root)
        out += f"DYNABOA_DATA={shlex.quote(str(root))}\n"
    os.environ["INTERNET_ROOT"] = str(REPO_ROOT)  # input/ is made after the claim: the checks look at the rest
    retrieval = not missing_required(check_assets(DataPaths.from_root(None), "internet", source_free=False))
    source = ["--retrieval", "1"] if retrieval else ["--source-free"]
    report = io.StringIO()
    with contextlib.redirect_stderr(report), contextlib.redirect_stdout(report):
        code = run_program([str(REPO_ROOT / "dynaboa.py"), *base, *source, *extra, "--check-assets"])
    if code:
        lines = report.getvalue().strip().splitlines()
        print(f"{lines[-1]} (the options after -- are dynaboa.py's: python dynaboa.py --help)" if code == 2 and lines
              else "\n".join(lines), file=sys.stderr)
    return code, out + f"SOURCE=({' '.join(source)})\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "plan":
        return plan_main(argv[1], argv[2:])
    if argv and argv[0] == "run":
        return run_stage(argv[1:])
    if argv and argv[0] == "prepare":
        cut = argv.index("--") if "--" in argv else len(argv)
        try:
            code, shell = prepare(argv[1:cut], argv[cut + 1:])
        except KeyboardInterrupt:  # the script's trap prints the line
            return 130
        sys.stdout.write(shell if code == 0 else "")
        return code
    parser = argparse.ArgumentParser(prog="python -m pipelines.own_video claim")
    parser.add_argument("command", choices=("claim",))
    parser.add_argument("run")
    parser.add_argument("--kind", choices=("video", "batch"), required=True)
    parser.add_argument("--mode", choices=("new", "resume", "overwrite"), required=True)
    parser.add_argument("--lock-fd", type=int, required=True)
    parser.add_argument("--options", default="{}")
    parser.add_argument("--created", default="", help="the first folder this launch created (removed if refused)")
    try:
        return claim_main(parser.parse_args(argv))
    except KeyboardInterrupt:  # the script's trap prints the line that continues
        return 130


if __name__ == "__main__":
    sys.exit(main())
