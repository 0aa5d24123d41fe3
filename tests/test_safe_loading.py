"""Every file reader refuses a pickle that would run code, naming the file, and runs none of it (docs/method.md §8)."""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse
import torch

from datasets.assets import _check_cluster_res
from datasets.checkpoint import load_backbone_init, read_checkpoint_extras
from datasets.h36m import load_h36m_annotations
from datasets.preprocess.h36m import Recording, read_mosh
from datasets.preprocess.pw3d import read_pw3d_sequence
from datasets.results import RunWriter
from datasets.retrieval import CLUSTER_FILE
from models.hmr import CheckpointError, load_hmr_checkpoint
from models.prior import load_gmm_prior
from models.smpl import load_smpl_model_data
from utils.io import (
    UnsafePickleError,
    atomic_path,
    restricted_joblib_load,
    restricted_load,
    restricted_npz_load,
    write_bytes_atomic,
)


class _RunsCode:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _pickle_file(path: Path, marker: Path, protocol: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"v_template": np.zeros(3), "payload": _RunsCode(marker)}, protocol=protocol))
    return path


def _joblib_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"centers": np.zeros((2, 512), np.float32), "index": _RunsCode(marker)}, path)
    return path


def _torch_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.zeros(1)}, "next_index": _RunsCode(marker)}, path)
    return path


def _npz_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, v_template=np.zeros((2, 3)), J_regressor=np.array(_RunsCode(marker), dtype=object))
    return path


def _recording_mosh(root: Path, marker: Path) -> Path:
    return _pickle_file(root / "S1" / "Walking_54138969_aligned.pkl", marker)


# (name, writes the crafted file into a folder, reads it, the error type expected)
LOADERS: list[tuple[str, Callable[[Path, Path], Path], Callable[[Path], object], type[Exception]]] = [
    ("smpl pkl", lambda d, m: _pickle_file(d / "SMPL_NEUTRAL.pkl", m), load_smpl_model_data, UnsafePickleError),
    ("smpl npz", lambda d, m: _npz_file(d / "SMPL_NEUTRAL.npz", m), load_smpl_model_data, UnsafePickleError),
    ("gmm protocol 0", lambda d, m: _pickle_file(d / "gmm_08.pkl", m, protocol=0), load_gmm_prior,
     UnsafePickleError),
    ("gmm protocol 4", lambda d, m: _pickle_file(d / "gmm_08.pkl", m, protocol=4), load_gmm_prior,
     UnsafePickleError),
    ("3dpw sequence", lambda d, m: _pickle_file(d / "courtyard.pkl", m), read_pw3d_sequence, UnsafePickleError),
    ("mosh fit", _recording_mosh, lambda p: read_mosh(p.parents[1], Recording("S1", "Walking", "54138969")),
     UnsafePickleError),
    ("retrieval cluster file (asset check)", lambda d, m: _joblib_file(d / CLUSTER_FILE, m), _check_cluster_res,
     UnsafePickleError),
    ("h36m joblib database", lambda d, m: _joblib_file(d / "h36m_train.pt", m), load_h36m_annotations,
     UnsafePickleError),
    ("hmr checkpoint", lambda d, m: _torch_file(d / "basemodel.pt", m), load_hmr_checkpoint, CheckpointError),
    ("checkpoint extras", lambda d, m: _torch_file(d / "last.pt", m), read_checkpoint_extras, UnsafePickleError),
    ("backbone init", lambda d, m: _torch_file(d / "resnet.pt", m), lambda p: load_backbone_init(None, p),
     UnsafePickleError),
]


@pytest.mark.parametrize("write, read, error", [loader[1:] for loader in LOADERS], ids=[x[0] for x in LOADERS])
def test_loader_refuses_a_code_running_pickle(tmp_path: Path, write, read, error) -> None:
    marker = tmp_path / "marker"
    path = write(tmp_path / "files", marker)
    with pytest.raises(error) as err:
        read(path)
    assert str(path) in str(err.value), str(err.value)
    assert "refused" in str(err.value) or "refused" in str(err.value.__cause__), str(err.value)
    assert not marker.exists()


def test_resume_state_refuses_a_code_running_pickle(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "preds").mkdir(parents=True)
    (run / "frames.csv").write_text("index\n")
    marker = tmp_path / "marker"
    _torch_file(run / "state.pt", marker)
    with pytest.raises(Exception) as err:  # RunWriter may wrap the refusal in its own error type
        RunWriter(run, resume=True)
    assert "state.pt" in str(err.value) and "refused" in str(err.value)
    assert not marker.exists()


def test_the_crafted_pickle_does_run_code_when_read_unrestricted(tmp_path: Path) -> None:
    """The attack the tests above use is real: a plain pickle.load creates the marker."""
    marker = tmp_path / "marker"
    with open(_pickle_file(tmp_path / "x.pkl", marker), "rb") as fh:
        pickle.load(fh)
    assert marker.exists()


def test_refusal_names_the_global(tmp_path: Path) -> None:
    path = _pickle_file(tmp_path / "x.pkl", tmp_path / "marker")
    with pytest.raises(UnsafePickleError, match=r"names (posix|nt)\.system"):
        restricted_load(path, "test file")


def test_allowed_contents_round_trip(tmp_path: Path) -> None:
    """What the formats really hold still reads: numpy arrays (also object / string arrays), sparse matrices."""
    data = {"centers": np.arange(6, dtype=np.float32).reshape(2, 3), "index": [[0, 1], (2,)],
            "imgname": np.array(["a.jpg", "bb.jpg"]), "objects": np.array(["x", 1], dtype=object)}
    for compress in (0, 3):
        joblib.dump(data, tmp_path / "c.pt", compress=compress)
        back = restricted_joblib_load(tmp_path / "c.pt", "test file")
        assert np.array_equal(back["centers"], data["centers"]) and back["index"] == data["index"]
        assert list(back["imgname"]) == ["a.jpg", "bb.jpg"] and list(back["objects"]) == ["x", 1]
    sparse = scipy.sparse.csc_matrix(np.eye(3))
    np.savez(tmp_path / "m.npz", J_regressor=np.array(sparse, dtype=object), f=np.zeros((2, 3), np.int32))
    with pytest.raises(UnsafePickleError, match="scipy.sparse"):
        restricted_npz_load(tmp_path / "m.npz", "test file")  # sparse classes are not in the default allow-list
    (tmp_path / "smpl.npz").write_bytes((tmp_path / "m.npz").read_bytes())
    loaded = load_smpl_model_data(tmp_path / "smpl.npz")
    assert (loaded["J_regressor"] != sparse).nnz == 0 and loaded["f"].shape == (2, 3)


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
