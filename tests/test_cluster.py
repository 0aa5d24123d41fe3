"""--backend dask: a local cluster of two worker processes (loopback only, started and stopped here) gives the
serial run's files; a worker killed mid-sequence is replaced and the sequence continues from its saved state."""
from __future__ import annotations

import csv
import os
import signal
import threading
import time

import numpy as np
import pytest

import dynaboa
from pipelines import cluster
from tests.test_parallel import FRAMES, drop_seconds, keep_threads, run, serial  # noqa: F401 (fixtures)

distributed = pytest.importorskip("distributed")


@pytest.fixture()
def local_cluster():
    """Two single-threaded worker processes on 127.0.0.1, shut down at the end of the test."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as lc, distributed.Client(lc) as client:
        yield lc, client


def same_as_serial(serial, got) -> None:
    rows, metrics, results = serial
    got_rows, got_metrics, got_results = got
    assert got_rows == rows and len({r["imgname"] + r["track"] for r in got_rows}) == FRAMES
    assert drop_seconds(got_metrics) == drop_seconds(metrics)
    assert got_results.keys() == results.keys() and all(np.array_equal(got_results[k], results[k]) for k in results)


def test_dask_cluster_equals_serial(world, serial, tmp_path, local_cluster):
    lc, _ = local_cluster
    got = run(world, tmp_path, "dask", "--reset-per-sequence", "--backend", "dask", "--scheduler",
              lc.scheduler_address, "--jobs", "2")
    same_as_serial(serial, got)


def _kill_when_saved(client, parts, killed: list) -> None:
    """Wait until a sequence has saved its first state and is still running, then SIGKILL its worker process."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        for part in parts.glob("*"):
            if (part / "state.pt").exists() and not (part / "metrics.json").exists():
                busy = [addr for addr, keys in client.processing().items() if any(part.name in k for k in keys)]
                rows = sum(1 for _ in csv.DictReader(open(part / "frames.csv", newline="")))
                if busy and 4 <= rows < 10:  # the 10-frame sequence, past its first saved chunk, not finished
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((part.name, pid, rows, (part / "preds" / "000000.npz").stat().st_mtime_ns))
                    return
        time.sleep(0.005)


def test_killed_worker_sequence_resumes(world, serial, tmp_path, local_cluster):
    """The kill races the run (it must land between a sequence's first saved state and its end): up to three tries,
    each from scratch; a machine too starved for the watcher to land it in three tries skips rather than fails."""
    lc, client = local_cluster
    for attempt in range(3):
        name_dir = f"kill{attempt}"
        killed: list = []
        watcher = threading.Thread(target=_kill_when_saved, args=(client, tmp_path / name_dir / "sequences", killed))
        watcher.start()
        try:
            got = run(world, tmp_path, name_dir, "--reset-per-sequence", "--backend", "dask", "--scheduler",
                      lc.scheduler_address, "--jobs", "2")
        finally:
            watcher.join()
        if killed:
            break
    else:
        pytest.skip("the sequences finished before the watcher could kill a worker, three times")
    name, pid, rows_at_kill, chunk_written = killed[0]
    assert 4 <= rows_at_kill < 10
    same_as_serial(serial, got)  # every frame once, the same numbers
    part = tmp_path / name_dir / "sequences" / name
    assert (part / "preds" / "000000.npz").stat().st_mtime_ns == chunk_written  # continued, not started over
    assert pid not in client.run(os.getpid).values()  # the killed process was replaced


def test_backend_options_are_checked():
    with pytest.raises(SystemExit):
        dynaboa.parse_args(["--backend", "dask"])
    with pytest.raises(SystemExit):
        dynaboa.parse_args(["--reset-per-sequence", "--scheduler", "tcp://127.0.0.1:8786"])
    run_cfg, _ = dynaboa.parse_args(["--reset-per-sequence", "--backend", "dask"])
    assert run_cfg.backend == "dask" and run_cfg.scheduler == ""
    with pytest.raises(ValueError, match="backend"):
        cluster.run_tasks([cluster.Task("a", print)], backend="ray")


def test_local_tasks_report_failures_by_name():
    outcome = cluster.run_tasks([cluster.Task("ok", int, ("3",)), cluster.Task("bad", int, ("x",))], jobs=1)
    assert outcome["ok"] is None and isinstance(outcome["bad"], ValueError)
    with pytest.raises(ValueError):
        cluster.raise_failures(outcome)
