"""datasets/retrieval.py: spherical k-means, the original's file layout, the memory-mapped cache and ExemplarBank."""
from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from config import AdaptConfig, DataPaths
from datasets.checkpoint import save_training_checkpoint
from datasets.h36m import H36MDataset, load_h36m_annotations
from datasets.retrieval import (
    CLUSTER_FILE,
    DATABASE_FILE,
    DATABASE_KEYS,
    FEATS_FILE,
    ExemplarBank,
    build_exemplar_cache,
    cache_paths,
    main,
    spherical_kmeans,
    write_database_files,
)
from models.adaptor import Adaptor, Frame
from models.hmr import HMR
from models.smpl import build_smpl
from tests.test_h36m_dataset import write_h36m_set
from utils.constants import IMG_NORM_STD

RES = 32  # cached crop side
N = 9  # fixture frames; hand-made clusters {0,1,2}, {3,4,5}, {6,7,8}


def test_spherical_kmeans_finds_directions_not_norms() -> None:
    rng = np.random.default_rng(0)
    directions = np.eye(8)[[0, 3, 6]]
    groups = np.repeat([0, 1, 2], 20)
    # same direction, norms from 0.1 to 10: Euclidean k-means would split by norm, cosine k-means must not
    feats = (directions[groups] + rng.normal(0, 0.05, (60, 8))) * rng.uniform(0.1, 10, (60, 1))
    centres, labels = spherical_kmeans(feats, 3, seed=1)
    assert centres.dtype == np.float32 and np.allclose(np.linalg.norm(centres, axis=1), 1.0, atol=1e-6)
    for g in range(3):  # each true group is one cluster, and the clusters differ
        assert len(set(labels[groups == g])) == 1
    assert len(set(labels)) == 3
    assert np.abs(centres @ directions.T).max(axis=1).min() > 0.99
    again = spherical_kmeans(feats, 3, seed=1)
    assert np.array_equal(again[1], labels) and np.array_equal(again[0], centres)


@pytest.fixture
def hand_made(tmp_path: Path) -> Path:
    """Retrieval files with three obvious clusters along e0, e1, e2 (D = 4) and the cache of 9 frames."""
    write_h36m_set(tmp_path, n=N)
    database = load_h36m_annotations(tmp_path / "dataset_extras" / "h36m_train.npz")
    out = tmp_path / "retrieval_res"
    build_exemplar_cache(database, tmp_path / "h36m", RES, out)
    labels = np.repeat([0, 1, 2], 3)
    write_database_files(out, np.eye(4, dtype=np.float32)[:3], labels, [np.eye(4)[labels]], database)
    return out


def _rows(batch) -> list[int]:
    """Database rows of retrieved exemplars: the fixture stores row / 10 in pose[:, 0]."""
    return [int(round(v * 10)) for v in batch.pose[:, 0].tolist()]


def test_retrieve_draws_members_of_the_nearest_cluster(hand_made: Path) -> None:
    bank = ExemplarBank(hand_made, RES, seed=0)
    feature = torch.tensor([[0.3, 4.0, 0.5, 2.0]])  # largest cosine with e1 -> cluster 1 = rows 3, 4, 5
    assert bank.nearest_cluster(feature) == 1
    batch = bank.retrieve(feature, 2)
    assert set(_rows(batch)) <= {3, 4, 5} and len(set(_rows(batch))) == 2  # without replacement
    assert batch.images.shape == (2, 3, RES, RES) and batch.keypoints.shape == (2, 49, 3)
    assert batch.pose.shape == (2, 72) and batch.betas.shape == (2, 10) and batch.joints3d.shape == (2, 24, 4)
    many = bank.retrieve(torch.tensor([[0.0, 0.1, 3.0, -1.0]]), 7)  # 7 > 3 members: drawn with replacement
    assert set(_rows(many)) <= {6, 7, 8} and len(many.pose) == 7
    draws = ExemplarBank(hand_made, RES, seed=0).sample_indices(feature, 50)
    assert set(draws) == {3, 4, 5}  # uniform over the members: all of them come up in 50 draws


def test_cached_exemplar_equals_the_dataset_item(hand_made: Path) -> None:
    bank = ExemplarBank(hand_made, RES, seed=3)
    batch = bank.retrieve(torch.tensor([[0.0, 0.0, 1.0, 0.0]]), 1)
    row = _rows(batch)[0]
    data = load_h36m_annotations(hand_made.parent / "dataset_extras" / "h36m_train.npz")
    item = H36MDataset(data, hand_made.parent / "h36m", RES)[row]
    # the cache stores crops rounded to uint8: at most half a grey level, i.e. 0.5 / 255 / std after normalising
    assert torch.allclose(batch.images[0], item["img"], atol=0.5 / 255 / min(IMG_NORM_STD) + 1e-6)
    assert torch.equal(batch.keypoints[0], item["keypoints"]) and torch.equal(batch.joints3d[0], item["pose_3d"])
    assert torch.equal(batch.betas[0], item["betas"]) and torch.allclose(batch.pose[0], item["pose"])


def test_cache_is_memory_mapped_and_needs_no_image_file(hand_made: Path) -> None:
    shutil.rmtree(hand_made.parent / "h36m")  # no frame left to decode
    bank = ExemplarBank(hand_made, RES)
    assert isinstance(bank.images, np.memmap) and bank.images.dtype == np.uint8
    assert bank.images.shape == (N, RES, RES, 3)
    assert torch.isfinite(bank.retrieve(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), 3).images).all()


def test_errors_name_the_problem(hand_made: Path, tmp_path: Path) -> None:
    bank = ExemplarBank(hand_made, RES)
    with pytest.raises(ValueError, match="feature dimension 512 does not match the 4-D centres"):
        bank.retrieve(torch.zeros(1, 512), 1)
    with pytest.raises(FileNotFoundError, match="python -m datasets.retrieval"):
        ExemplarBank(hand_made, 224)  # no cache at 224 px
    clusters = joblib.load(hand_made / CLUSTER_FILE)
    clusters["index"][2] = [7, 8, 40]  # an index beyond the 9 cached exemplars
    joblib.dump(clusters, hand_made / CLUSTER_FILE)
    with pytest.raises(ValueError, match="different databases"):
        ExemplarBank(hand_made, RES)


def test_build_writes_the_original_layout(tmp_path: Path) -> None:
    write_h36m_set(tmp_path, n=12)
    torch.manual_seed(0)
    model = HMR("resnet18")
    save_training_checkpoint(tmp_path / "base.pt", model, None, step=0, epoch=0, img_res=RES)
    assert main(["--data-root", str(tmp_path), "--model", str(tmp_path / "base.pt"), "--k", "3",
                 "--max-samples", "10", "--workers", "0", "--batch-size", "4"]) == 0
    out = tmp_path / "retrieval_res"
    clusters = joblib.load(out / CLUSTER_FILE)
    assert isinstance(clusters, dict) and set(clusters) == {"centers", "index"}
    assert clusters["centers"].shape == (3, 512) and clusters["centers"].dtype == np.float32
    assert isinstance(clusters["index"], list) and all(isinstance(m, list) for m in clusters["index"])
    assert sorted(i for m in clusters["index"] for i in m) == list(range(10))
    feats = joblib.load(out / FEATS_FILE)
    assert isinstance(feats, list) and [f.shape for f in feats] == [(4, 512), (4, 512), (2, 512)]
    database = joblib.load(out / DATABASE_FILE)
    assert isinstance(database, dict) and set(database) == set(DATABASE_KEYS)
    shapes = {"center": (10, 2), "scale": (10,), "pose": (10, 72), "shape": (10, 10), "S": (10, 24, 4),
              "part": (10, 24, 3), "imgname": (10,)}
    assert {key: database[key].shape for key in DATABASE_KEYS} == shapes
    image_file, _ = cache_paths(out, RES)  # the checkpoint's img_res chose the crop size
    assert np.load(image_file, mmap_mode="r").shape == (10, RES, RES, 3)
    # each frame's own feature retrieves from the cluster the k-means put it in
    bank = ExemplarBank(out, RES)
    all_feats = np.concatenate(feats)
    for c, members in enumerate(clusters["index"]):
        if members:
            assert bank.nearest_cluster(torch.from_numpy(all_feats[members[:1]])) == c

    # a user with only the database file (the original's, no has_smpl) rebuilds the same cache
    cached = np.load(image_file).copy()
    image_file.unlink()
    assert main(["--data-root", str(tmp_path), "--cache-only", "--img-res", str(RES), "--workers", "0"]) == 0
    assert np.array_equal(np.load(image_file), cached)


def test_bank_serves_the_adaptor(hand_made: Path, body_root: Path, tmp_path: Path) -> None:
    """One adaptation step with real retrieval: exemplars are 512-D-keyed, so the hand-made 4-D files are rebuilt."""
    database = load_h36m_annotations(hand_made.parent / "dataset_extras" / "h36m_train.npz")
    labels = np.repeat([0, 1, 2], 3)
    rng = np.random.default_rng(0)
    write_database_files(hand_made, rng.normal(size=(3, 512)).astype(np.float32), labels,
                         [rng.normal(size=(N, 512))], database)
    torch.manual_seed(0)
    cfg = AdaptConfig(sample_num=2, dynamic_boa=False)
    adaptor = Adaptor(HMR("resnet18"), build_smpl(DataPaths.from_root(body_root), "neutral"), cfg,
                      exemplars=ExemplarBank(hand_made, RES))
    frame = Frame(torch.randn(1, 3, RES, RES), torch.cat([torch.rand(1, 49, 2) - 0.5, torch.ones(1, 49, 1)], -1))
    result = adaptor.step(frame)
    assert result.updated and "lower/labelled" in result.losses and "upper/labelled" in result.losses
