"""The asset check on temporary data roots: missing, valid and broken files, and the command's exit code."""
from __future__ import annotations

import pickle
import shutil
import sys
import types
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

import process_data
from config import DataPaths
from datasets.assets import check_assets, format_report, missing_required
from datasets.checkpoint import save_training_checkpoint
from models.hmr import HMR
from models.prior import save_gmm_prior

EXEMPLAR = "images/S9_Directions_1.60457274_000001.jpg"


@pytest.fixture(autouse=True)
def _no_root_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PW3D_ROOT", "H36M_ROOT", "INTERNET_ROOT", "DYNABOA_DATA"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def fake_smpl_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """`models.smpl` stand-in reading a plain pickle, so that small files test the vertex-count check."""
    module = types.ModuleType("models.smpl")

    def load_smpl_model_data(path: Path) -> dict:
        with open(path, "rb") as fh:
            return pickle.load(fh)

    module.load_smpl_model_data = load_smpl_model_data
    module.validate_smpl_data = lambda data, path: None
    monkeypatch.setitem(sys.modules, "models.smpl", module)


def _write_smpl(path: Path, vertices: int = 6890) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump({"v_template": np.zeros((vertices, 3))}, fh)


def write_complete_root(root: Path) -> DataPaths:
    """Every asset of a 3DPW run, tiny but with the right keys and shapes."""
    paths = DataPaths.from_root(root)
    for gender in ("NEUTRAL", "MALE", "FEMALE"):
        _write_smpl(paths.smpl_model_dir / f"SMPL_{gender}.pkl")
    save_training_checkpoint(paths.base_model, HMR("resnet10"), None, 0, 3, img_res=64)
    np.save(paths.j_regressor_extra, np.zeros((9, 6890)))
    np.save(paths.j_regressor_h36m, np.zeros((17, 6890)))
    np.savez(paths.smpl_mean_params, pose=np.zeros(144), shape=np.zeros(10), cam=np.zeros(3))
    save_gmm_prior(paths.gmm_prior, np.zeros((8, 69)), np.tile(np.eye(69), (8, 1, 1)), np.full(8, 1 / 8))
    paths.dataset_extras.mkdir()
    np.savez(paths.dataset_extras / "3dpw_0_0.npz", **{k: np.zeros(2) for k in
                                                        ("imgname", "center", "scale", "pose", "shape", "j2d")})
    (paths.pw3d_root / "imageFiles").mkdir(parents=True)
    paths.retrieval_dir.mkdir()
    joblib.dump({"centers": np.zeros((3, 2048)), "index": [[0], [1], (2,)]},
                paths.retrieval_dir / "cluster_res_random_sample_center_10_10_potocol2.pt")
    joblib.dump({"imgname": np.array([EXEMPLAR]), "center": np.zeros((1, 2)), "scale": np.ones(1),
                 "pose": np.zeros((1, 72)), "shape": np.zeros((1, 10)), "S": np.zeros((1, 24, 4)),
                 "part": np.zeros((1, 24, 3))}, paths.retrieval_dir / "h36m_random_sample_center_10_10.pt")
    joblib.dump([np.zeros((1, 2048))], paths.retrieval_dir / "h36m_feats_random_sample_center_10_10.pt")
    (paths.h36m_root / "images").mkdir(parents=True)
    (paths.h36m_root / EXEMPLAR).write_bytes(b"jpeg")
    return paths


def _by_name(statuses: list) -> dict:
    return {s.name: s for s in statuses}


def test_empty_root_lists_everything_missing(tmp_path: Path) -> None:
    statuses = check_assets(DataPaths.from_root(tmp_path), "3dpw")
    assert {s.state for s in statuses} == {"missing"}
    names = [s.name for s in statuses]
    for expected in ("smpl/SMPL_NEUTRAL.pkl", "basemodel.pt", "J_regressor_extra.npy", "J_regressor_h36m.npy",
                     "smpl_mean_params.npz", "gmm_08.pkl", "dataset_extras/3dpw_*.npz",
                     "retrieval_res/cluster_res_random_sample_center_10_10_potocol2.pt", "Human3.6M root"):
        assert expected in names
    report = format_report(statuses)
    assert "smpl.is.tue.mpg.de" in report and "Google Drive" in report and "spin/data.tar.gz" in report
    assert process_data.main(["--check-assets", "--data-root", str(tmp_path)]) == 1


def test_complete_root_is_valid(tmp_path: Path, fake_smpl_loader: None, capsys: pytest.CaptureFixture) -> None:
    write_complete_root(tmp_path)
    statuses = check_assets(DataPaths.from_root(tmp_path), "3dpw")
    assert missing_required(statuses) == []
    by_name = _by_name(statuses)
    assert by_name["smpl/SMPL_MALE.pkl"].state == "valid" and by_name["basemodel.pt"].state == "valid"
    assert by_name["retrieval_res/h36m_feats_random_sample_center_10_10.pt"].state == "present"
    assert by_name["retrieval_res/cluster_res_random_sample_center_10_10_potocol2.pt"].reason == "3 clusters"
    assert "first 1 exemplar images found" in by_name["Human3.6M root"].reason
    assert process_data.main(["--check-assets", "--for", "3dpw", "--data-root", str(tmp_path)]) == 0
    assert "nothing required is missing" in capsys.readouterr().out


def test_broken_files_are_invalid_with_reasons(tmp_path: Path, fake_smpl_loader: None) -> None:
    paths = write_complete_root(tmp_path)
    _write_smpl(paths.smpl_model_dir / "SMPL_FEMALE.pkl", vertices=100)
    np.save(paths.j_regressor_extra, np.zeros((8, 6890)))
    torch.save({"state_dict": {}}, paths.base_model)
    paths.gmm_prior.write_bytes(paths.gmm_prior.read_bytes().replace(b"\n", b"\r\n"))  # a Windows checkout
    (paths.h36m_root / EXEMPLAR).unlink()
    by_name = _by_name(check_assets(paths, "3dpw"))
    expected = {"smpl/SMPL_FEMALE.pkl": "(100, 3)", "J_regressor_extra.npy": "(8, 6890)",
                "basemodel.pt": "'model'", "gmm_08.pkl": "CRLF", "Human3.6M root": "S9_Directions_1"}
    for name, fragment in expected.items():
        assert by_name[name].state == "invalid" and fragment in by_name[name].reason, by_name[name]
    assert "git config core.autocrlf" in by_name["gmm_08.pkl"].reason


def test_purposes_and_source_free(tmp_path: Path, fake_smpl_loader: None) -> None:
    paths = write_complete_root(tmp_path)
    shutil.rmtree(paths.retrieval_dir)
    shutil.rmtree(paths.h36m_root)
    internet = _by_name(check_assets(paths, "internet"))
    assert "dataset_extras/3dpw_*.npz" not in internet and internet["internet root"].state == "missing"
    assert not internet["smpl/SMPL_MALE.pkl"].required and internet["smpl/SMPL_NEUTRAL.pkl"].required
    bad = {s.name for s in missing_required(check_assets(paths, "3dpw"))}
    assert bad == {"retrieval_res/cluster_res_random_sample_center_10_10_potocol2.pt",
                   "retrieval_res/h36m_random_sample_center_10_10.pt", "Human3.6M root"}
    assert missing_required(check_assets(paths, "3dpw", source_free=True)) == []
    synthetic = check_assets(paths, "synthetic", source_free=True)
    assert missing_required(synthetic) == [] and all("datasets.synthetic" in s.source for s in synthetic)
    with pytest.raises(ValueError, match="purpose"):
        check_assets(paths, "3dhp")


def test_real_smpl_loader_on_the_procedural_body(body_root: Path, tmp_path: Path) -> None:
    by_name = _by_name(check_assets(DataPaths.from_root(body_root), "3dpw"))
    for gender in ("NEUTRAL", "MALE", "FEMALE"):
        assert by_name[f"smpl/SMPL_{gender}.pkl"].state == "valid", by_name[f"smpl/SMPL_{gender}.pkl"]
    assert by_name["J_regressor_h36m.npy"].state == "valid"
    shutil.copytree(body_root / "smpl", tmp_path / "smpl")
    with open(tmp_path / "smpl" / "SMPL_MALE.pkl", "rb") as fh:
        model = pickle.load(fh)
    del model["weights"]
    with open(tmp_path / "smpl" / "SMPL_MALE.pkl", "wb") as fh:
        pickle.dump(model, fh)
    broken = _by_name(check_assets(DataPaths.from_root(tmp_path), "3dpw"))["smpl/SMPL_MALE.pkl"]
    assert broken.state == "invalid" and "weights" in broken.reason


def test_checkpoint_of_another_architecture_is_invalid(tmp_path: Path) -> None:
    """A dict with a 'model' state dict that is not HMR's (here a torchvision-style classifier) is not 'valid'."""
    paths = write_complete_root(tmp_path)
    torch.save({"model": {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}},
               paths.base_model)
    status = {s.name: s for s in check_assets(paths, "3dpw")}["basemodel.pt"]
    assert status.state == "invalid", status
