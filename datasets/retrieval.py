"""The source-exemplar retrieval database: builder, pre-cropped exemplar cache and `ExemplarBank` (docs/method.md §6).

    python -m datasets.retrieval --data-root data/synthetic --model runs/base18/basemodel.pt --k 10
    python -m datasets.retrieval --data-root data --cache-only --img-res 224   # the original's database file + H36M

Building embeds the source frames (`h36m_train.npz`, optionally a seeded random subset) with the base model's pooled
feature `xf` at the model's input size, clusters the L2-normalised features by spherical k-means (cosine space) and
writes, with joblib, the three files of the original release under `<data root>/retrieval_res/`:

- `CLUSTER_FILE`: `{'centers': float32 [K, D] (unit rows), 'index': K lists of int}` (indices into the database);
- `FEATS_FILE`: a list of float32 [b, D] arrays (the features, one array per embedding batch);
- `DATABASE_FILE`: `{imgname, center, scale, pose [N, 72], shape [N, 10], S [N, 24, 4], part [N, 24, 3]}`.

Next to them, the exemplar cache: `exemplar_cache_<res>.npy`, uint8 crops [N, res, res, 3] (memory-mapped when
read), and `exemplar_cache_<res>.npz` with the labels (`keypoints` [N, 49, 3] normalised, zeros in the OpenPose block;
`pose`, `betas`, `S`). Retrieval then decodes no full-resolution frame (the original read one per call,
docs/method.md §11 item 16).
`--cache-only` builds the cache alone from an existing `DATABASE_FILE` (e.g. the original's) and the H36M frames.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from config import DataPaths, build_parser, config_from_namespace, option
from datasets.checkpoint import input_size
from datasets.h36m import Augmentation, H36MDataset, load_h36m_annotations, normalize_image, subset_annotations
from models.adaptor import ExemplarBatch
from models.hmr import HMR, load_hmr_checkpoint
from utils.clustering import kmeans_plus_plus
from utils.constants import IMG_RES
from utils.io import atomic_path, restricted_joblib_load, savez_atomic
from utils.runtime import resolve_device

logger = logging.getLogger(__name__)

CLUSTER_FILE = "cluster_res_random_sample_center_10_10_potocol2.pt"  # (sic) the original's name
FEATS_FILE = "h36m_feats_random_sample_center_10_10.pt"
DATABASE_FILE = "h36m_random_sample_center_10_10.pt"
DATABASE_KEYS = ("imgname", "center", "scale", "pose", "shape", "S", "part")
LABEL_KEYS = ("keypoints", "pose", "betas", "S")
_BUILD_HELP = "build it with `python -m datasets.retrieval --data-root DIR --model BASEMODEL` (see its --help)"


def cache_paths(retrieval_dir: Path, img_res: int) -> tuple[Path, Path]:
    """(crops .npy, labels .npz) of the exemplar cache at `img_res` pixels."""
    stem = Path(retrieval_dir) / f"exemplar_cache_{img_res}"
    return stem.with_suffix(".npy"), stem.with_suffix(".npz")


def spherical_kmeans(features: np.ndarray, k: int, seed: int = 0, max_iter: int = 100
                     ) -> tuple[np.ndarray, np.ndarray]:
    """k-means on the unit sphere: assign by the largest cosine, centre = normalised mean of the members.

    Seeding is k-means++ with the cosine distance 1 - cos; an emptied cluster takes the point farthest from its
    centre. Deterministic given `seed`.

    Args:
        features: [N, D], N >= k (any norm; rows are L2-normalised here).
        k: number of clusters.
    Returns:
        centres [k, D] float32 unit rows, labels [N] int64.
    """
    assert features.ndim == 2 and 1 <= k <= features.shape[0], (features.shape, k)
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    centres = kmeans_plus_plus(x, k, np.random.default_rng(seed), lambda points, c: np.clip(1.0 - points @ c, 0.0, None))
    labels = np.full(len(x), -1)
    for _ in range(max_iter):
        sim = x @ centres.T
        new = sim.argmax(axis=1)
        for c in np.setdiff1d(np.arange(k), new):  # empty cluster: take the worst-served point
            new[np.argmin(sim[np.arange(len(x)), new])] = c
        if np.array_equal(new, labels):
            break
        labels = new
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, x)
        centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centres.astype(np.float32), labels.astype(np.int64)


class _CropSet(Dataset):
    """Un-augmented uint8 crops and labels of a database (the cache's rows), for parallel decoding."""

    def __init__(self, database: Mapping[str, np.ndarray], image_root: Path, img_res: int) -> None:
        self.frames = H36MDataset(database, image_root, img_res)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        item = self.frames.process(index, Augmentation())
        item["rgb"] = np.round(item["rgb"]).astype(np.uint8)
        item["S"] = item.pop("pose_3d")
        return item


def build_exemplar_cache(database: Mapping[str, np.ndarray], image_root: Path, img_res: int, out_dir: Path,
                         workers: int = 0) -> tuple[Path, Path]:
    """Crop every database frame once: uint8 [N, res, res, 3] `.npy` and the labels `.npz` (module docstring).

    The `.npy` is written through `np.lib.format.open_memmap` (never held in memory) and renamed when complete.
    """
    crops = _CropSet(database, image_root, img_res)
    n = len(crops)
    image_file, label_file = cache_paths(out_dir, img_res)
    image_file.parent.mkdir(parents=True, exist_ok=True)
    labels = {"keypoints": np.zeros((n, 49, 3), np.float32), "pose": np.zeros((n, 72), np.float32),
              "betas": np.zeros((n, 10), np.float32), "S": np.zeros((n, 24, 4), np.float32)}
    loader = DataLoader(crops, batch_size=64, num_workers=workers)
    with atomic_path(image_file) as tmp:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, img_res, img_res, 3))
        start = 0
        for batch in tqdm(loader, desc="exemplar cache", dynamic_ncols=True):
            stop = start + len(batch["rgb"])
            images[start:stop] = batch["rgb"].numpy()
            for key in LABEL_KEYS:
                labels[key][start:stop] = batch[key].numpy()
            start = stop
        images.flush()
        del images
    savez_atomic(label_file, {"imgname": crops.frames.data["imgname"], **labels})
    logger.info("wrote %s (%d crops of %d px) and %s", image_file, n, img_res, label_file)
    return image_file, label_file


@torch.no_grad()
def embed_cache(model: HMR, image_file: Path, batch_size: int = 32, device: str | torch.device = "cpu"
                ) -> list[np.ndarray]:
    """Pooled features `xf` of every cached crop: a list of float32 [b, D] arrays, one per batch."""
    model = model.eval().to(device)
    images = np.load(image_file, mmap_mode="r")
    feats = []
    for start in tqdm(range(0, len(images), batch_size), desc="embed", dynamic_ncols=True):
        crops = normalize_image(images[start:start + batch_size]).to(device)
        feats.append(model(crops).feature.float().cpu().numpy())
    return feats


def write_database_files(out_dir: Path, centres: np.ndarray, labels: np.ndarray, feats: Sequence[np.ndarray],
                         database: Mapping[str, np.ndarray]) -> list[Path]:
    """Write CLUSTER_FILE, FEATS_FILE and DATABASE_FILE with joblib in the original's layout."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = [np.flatnonzero(labels == c).tolist() for c in range(len(centres))]
    files = [out_dir / CLUSTER_FILE, out_dir / FEATS_FILE, out_dir / DATABASE_FILE]
    joblib.dump({"centers": np.asarray(centres, dtype=np.float32), "index": index}, files[0])
    joblib.dump([np.asarray(f, dtype=np.float32) for f in feats], files[1])
    joblib.dump({key: np.asarray(database[key]) for key in DATABASE_KEYS}, files[2])
    return files


@dataclass
class RetrievalConfig:
    """Options of `python -m datasets.retrieval`."""

    data_root: Path | None = option("data root ($DYNABOA_DATA or data/ when unset)", default=None)
    model: Path | None = option("base model (<root>/basemodel.pt when unset)", default=None)
    k: int = option("number of clusters", default=10)
    max_samples: int = option("seeded random subset of the source frames (0 = all)", default=0)
    npz: str = option("source file under dataset_extras/", default="h36m_train.npz")
    img_res: int = option("crop side; 0 = the checkpoint's img_res, else 224", default=0)
    seed: int = option("seeds the subset and the k-means initialisation", default=0)
    batch_size: int = option("embedding batch size", default=32)
    workers: int = option("processes decoding frames for the cache", default=2)
    device: str = option("'auto', 'cpu' or 'cuda'", default="auto")
    cache_only: bool = option("only crop the cache of an existing DATABASE_FILE", default=False)
    out: Path | None = option("output folder (<root>/retrieval_res when unset)", default=None)


def build_database(cfg: RetrievalConfig) -> list[Path]:
    """Subset, cache, embed, cluster and write every file (module docstring); returns the written paths."""
    paths = DataPaths.from_root(cfg.data_root)
    out_dir = cfg.out or paths.retrieval_dir
    model_path = cfg.model or paths.base_model
    model = load_hmr_checkpoint(model_path)
    img_res = input_size(model_path, cfg.img_res)
    data = load_h36m_annotations(paths.dataset_extras / cfg.npz)
    n = len(data["imgname"])
    rows = np.arange(n)
    if 0 < cfg.max_samples < n:
        rows = np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.max_samples, replace=False))
    database = subset_annotations(data, rows)
    cache = build_exemplar_cache(database, paths.h36m_root, img_res, out_dir, cfg.workers)
    feats = embed_cache(model, cache[0], cfg.batch_size, resolve_device(cfg.device))
    centres, labels = spherical_kmeans(np.concatenate(feats), cfg.k, cfg.seed)
    files = write_database_files(out_dir, centres, labels, feats, database)
    logger.info("database of %d frames, %d clusters (sizes %s) in %s", len(rows), cfg.k,
                np.bincount(labels, minlength=cfg.k).tolist(), out_dir)
    return files + list(cache)


class ExemplarBank:
    """Labelled source exemplars near a feature: the `models.adaptor.ExemplarSource` of the retrieval database.

    `retrieve(feature, n)` takes the cluster whose centre has the largest cosine with `feature` (the original's
    argmin of 1 - cos) and draws `n` of its members uniformly (without replacement while the cluster is large
    enough). Crops come from the memory-mapped cache; no image file is read.

    Args:
        retrieval_dir: folder holding CLUSTER_FILE and the exemplar cache.
        img_res: side of the cached crops (the adapted model's input size).
        device: where the returned tensors live.
        seed: seeds the member draws.
    """

    def __init__(self, retrieval_dir: Path, img_res: int = IMG_RES, device: str | torch.device = "cpu",
                 seed: int = 0) -> None:
        retrieval_dir = Path(retrieval_dir)
        cluster_file = retrieval_dir / CLUSTER_FILE
        image_file, label_file = cache_paths(retrieval_dir, img_res)
        for path, what in ((cluster_file, "cluster file"), (image_file, "exemplar cache"),
                           (label_file, "exemplar labels")):
            if not path.is_file():
                raise FileNotFoundError(f"retrieval {what} {path} not found: {_BUILD_HELP}; with the original's "
                                        f"files, add the cache with --cache-only --img-res {img_res}.")
        clusters = restricted_joblib_load(cluster_file, "retrieval cluster file")
        self.device = torch.device(device)
        centres = torch.as_tensor(np.asarray(clusters["centers"], dtype=np.float32))
        self.centres = torch.nn.functional.normalize(centres, dim=1).to(self.device)  # [K, D]
        self.members = [np.asarray(clusters["index"][c], dtype=np.int64) for c in range(len(centres))]
        self.images = np.load(image_file, mmap_mode="r")  # [N, res, res, 3] uint8, read on demand
        with np.load(label_file) as npz:
            self.labels = {key: torch.from_numpy(npz[key]) for key in LABEL_KEYS}
        self._check(cluster_file, image_file)
        self.rng = np.random.default_rng(seed)
        self.source = cluster_file

    def _check(self, cluster_file: Path, image_file: Path) -> None:
        n = len(self.images)
        if any(len(self.labels[key]) != n for key in LABEL_KEYS):
            raise ValueError(f"{image_file}: crops and labels differ in length; rebuild the cache")
        for c, members in enumerate(self.members):
            if len(members) == 0 or members.min() < 0 or members.max() >= n:
                raise ValueError(f"{cluster_file}: cluster {c} is empty or indexes outside the {n} cached "
                                 "exemplars; the cache and the clusters come from different databases")

    @property
    def feature_dim(self) -> int:
        return int(self.centres.shape[1])

    def nearest_cluster(self, feature: torch.Tensor) -> int:
        """Cluster whose centre is closest in cosine to `feature` [1, D]."""
        assert feature.dim() == 2 and feature.shape[0] == 1, feature.shape
        if feature.shape[1] != self.feature_dim:
            raise ValueError(f"feature dimension {feature.shape[1]} does not match the {self.feature_dim}-D centres "
                             f"of {self.source}: the database was built with another backbone; {_BUILD_HELP}")
        sim = torch.nn.functional.cosine_similarity(feature.detach().float().to(self.device), self.centres, dim=1)
        return int(sim.argmax())

    def sample_indices(self, feature: torch.Tensor, n: int) -> np.ndarray:
        """`n` database indices drawn uniformly from the nearest cluster (with replacement only if it is smaller)."""
        assert n >= 1, n
        members = self.members[self.nearest_cluster(feature)]
        return self.rng.choice(members, size=n, replace=n > len(members))

    def retrieve(self, feature: torch.Tensor, n: int = 1) -> ExemplarBatch:
        """`n` labelled exemplars of the nearest cluster, normalised images [n, 3, res, res] on `device`."""
        ids = self.sample_indices(feature, n)
        order = np.argsort(ids)  # read the memory map in increasing order, then restore the draw order
        crops = np.empty((n,) + self.images.shape[1:], np.uint8)
        crops[order] = self.images[ids[order]]
        rows = torch.from_numpy(ids)
        to = {key: value[rows].to(self.device) for key, value in self.labels.items()}
        images = normalize_image(crops).to(self.device)
        return ExemplarBatch(images=images, keypoints=to["keypoints"], pose=to["pose"], betas=to["betas"],
                             joints3d=to["S"])


def parse_args(argv: Sequence[str] | None = None) -> RetrievalConfig:
    parser = build_parser(__doc__.splitlines()[0], [(RetrievalConfig, "retrieval database")])
    ns = parser.parse_args(argv)
    return config_from_namespace(RetrievalConfig, ns, ns.config)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    paths = DataPaths.from_root(cfg.data_root)
    if cfg.cache_only:
        out_dir = cfg.out or paths.retrieval_dir
        database = load_h36m_annotations(out_dir / DATABASE_FILE)
        build_exemplar_cache(database, paths.h36m_root, cfg.img_res or IMG_RES, out_dir, cfg.workers)
    else:
        build_database(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
