"""Independent tasks (sequences of a `--reset-per-sequence` run, videos of a batch) in parallel: local processes
through joblib (`backend="local"`) or a dask.distributed cluster (`backend="dask"`), at `scheduler` or a LocalCluster
of `jobs` single-threaded worker processes on the loopback started for the run.

A task whose worker dies is run again by the scheduler on another worker (up to dask's
`distributed.scheduler.allowed-failures`, 3 by default); the task functions continue from the state they saved
(each sequence or video has its own resumable run directory), so work done before the death is kept and no row is
written twice. The callers merge only after every task has ended.

On a real cluster (the repository and the data at the same paths on every machine):

    dask scheduler                                                       # on one machine: tcp://HOST:8786
    PYTHONPATH=$PWD dask worker tcp://HOST:8786 --nworkers 4 --nthreads 1  # on each machine, in the repository
    python dynaboa.py ... --reset-per-sequence --backend dask --scheduler tcp://HOST:8786
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

BACKENDS = ("local", "dask")


@dataclass(frozen=True)
class Task:
    """One unit of work: `fn(*args)` under the name `name` (unique within a batch)."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()


@contextmanager
def dask_client(scheduler: str = "", workers: int = 2) -> Iterator[Any]:
    """A dask.distributed Client of the cluster at `scheduler`, or of a LocalCluster of `workers` processes (one
    thread each, 127.0.0.1 only, no dashboard) that is shut down on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise RuntimeError("--backend dask needs dask.distributed: pip install -r requirements.txt") from err
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def _run_dask(tasks: Sequence[Task], client: Any, on_done: Callable[[str, BaseException | None], None]) -> None:
    from distributed import as_completed

    futures = {client.submit(t.fn, *t.args, key=f"{t.name}-{id(t):x}", pure=False): t.name for t in tasks}
    for future in as_completed(futures):
        on_done(futures[future], future.exception())


def _guarded(fn: Callable[..., Any], *args: Any) -> BaseException | None:
    """fn(*args) in a joblib worker; the exception instead of raising, so that one failure does not stop the rest."""
    try:
        fn(*args)
    except Exception as err:  # reported by the caller, by name
        return err
    return None


def run_tasks(tasks: Sequence[Task], backend: str = "local", jobs: int = 1, scheduler: str = "",
              on_done: Callable[[str, BaseException | None], None] | None = None) -> dict[str, BaseException | None]:
    """Run every task; returns name -> None (finished) or the exception it ended with. `on_done(name, error)` is
    called as each one ends (in completion order with dask, in task order locally)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    outcome: dict[str, BaseException | None] = {}

    def done(name: str, error: BaseException | None) -> None:
        outcome[name] = error
        if error is not None:
            logger.error("%s failed: %s: %s", name, type(error).__name__, error)
        if on_done is not None:
            on_done(name, error)

    if not tasks:
        return outcome
    if backend == "dask":
        with dask_client(scheduler, jobs) as client:
            logger.info("%d tasks on the dask cluster at %s", len(tasks), client.scheduler.address)
            _run_dask(tasks, client, done)
    else:
        import joblib

        results = joblib.Parallel(n_jobs=jobs, return_as="generator")(
            joblib.delayed(_guarded)(t.fn, *t.args) for t in tasks)
        for task, error in zip(tasks, results, strict=True):
            done(task.name, error)
    return outcome


def raise_failures(outcome: dict[str, BaseException | None]) -> None:
    """Raise the first failure of `run_tasks` as it was raised (every failure was logged by name)."""
    failed = [err for err in outcome.values() if err is not None]
    if failed:
        logger.error("%d of %d tasks failed", len(failed), len(outcome))
        raise failed[0]
