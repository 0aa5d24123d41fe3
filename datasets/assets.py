"""Which files a real run needs, whether each is there and sound, and where a missing one comes from.

`check_assets(paths, purpose)` returns one `AssetStatus` per asset (state `valid`: read and checked; `present`: there,
content not checked; `missing`; `invalid`: there but unusable, with the reason); `format_report` renders them as a
table. `python process_data.py --check-assets --for {3dpw,internet,synthetic}` prints it and exits 1 when a required
asset is missing or invalid. `data/README.md` shows the whole tree.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config import DataPaths

logger = logging.getLogger(__name__)

PURPOSES = ("3dpw", "internet", "synthetic")
SMPL_VERTICES = 6890
RETRIEVAL_FILES = {  # file under retrieval_res/ -> what it is
    "cluster_res_random_sample_center_10_10_potocol2.pt": "cluster centres and members of the exemplars",
    "h36m_random_sample_center_10_10.pt": "Human3.6M exemplar database",
    "h36m_feats_random_sample_center_10_10.pt": "exemplar features (loaded by the original, never used)",
}
EXEMPLAR_KEYS = ("imgname", "center", "scale", "pose", "shape", "S", "part")
PW3D_NPZ_KEYS = ("imgname", "center", "scale", "pose", "shape", "j2d")

SRC_SMPL = ("SMPL site https://smpl.is.tue.mpg.de (registration): the male/female models, and the neutral one of "
            "SMPL 1.1 or SMPLify (https://smplify.is.tue.mpg.de), renamed SMPL_NEUTRAL/MALE/FEMALE.pkl")
SRC_DRIVE = "the original DynaBOA release's Google Drive bundle (links in the README of github.com/syguan96/DynaBOA)"
SRC_SPIN = "SPIN's data (fetch_data.sh of github.com/nkolot/SPIN: http://visiondata.cis.upenn.edu/spin/data.tar.gz)"
SRC_GMM = "data/gmm_08.pkl of github.com/syguan96/DynaBOA (also in SPIN's data); keep LF line endings"
SRC_PW3D = "3DPW https://virtualhumans.mpi-inf.mpg.de/3DPW/ (imageFiles/, sequenceFiles/)"
SRC_PW3D_NPZ = f"`python process_data.py --dataset 3dpw` from {SRC_PW3D}, or {SRC_DRIVE}"
SRC_H36M = ("Human3.6M http://vision.imar.ro/human3.6m (registration), then "
            "`python process_data.py --dataset h36m --protocol2` to extract the exemplar images")
SRC_INTERNET = ("your videos: `python vid2img.py VIDEO` and AlphaPose/OpenPose keypoints, then "
                "`python process_data.py --dataset internet`")
SRC_SYNTHETIC = "the synthetic world: `python -m datasets.synthetic` (writes data/synthetic/, see data/README.md)"


@dataclass(frozen=True)
class AssetStatus:
    """The state of one asset.

    Attributes:
        name: short name (the original's file name or folder).
        path: where it is looked for.
        state: "valid", "present", "missing" or "invalid".
        reason: what was found (shapes, counts) or what is wrong.
        source: where to get it.
        required: whether the run cannot start without it.
    """

    name: str
    path: Path
    state: str
    reason: str
    source: str
    required: bool

    @property
    def ok(self) -> bool:
        return self.state in ("valid", "present")


Check = Callable[[Path], str]  # returns a description of a valid asset, raises ValueError when it is invalid


def _check_smpl(path: Path) -> str:
    from models.smpl import load_smpl_model_data, validate_smpl_data

    data = load_smpl_model_data(path)
    validate_smpl_data(data, path)  # ValueError naming a missing key or a wrong shape
    v_template = np.asarray(data["v_template"])
    if v_template.shape != (SMPL_VERTICES, 3):
        raise ValueError(f"v_template has shape {v_template.shape}, expected ({SMPL_VERTICES}, 3)")
    return f"{SMPL_VERTICES} vertices"


def _array_check(shape: tuple[int, ...]) -> Check:
    def check(path: Path) -> str:
        array = np.load(path, mmap_mode="r")
        if array.shape != shape:
            raise ValueError(f"shape {array.shape}, expected {shape}")
        return f"shape {shape}"

    return check


def _check_mean_params(path: Path) -> str:
    expected = {"pose": (144,), "shape": (10,), "cam": (3,)}
    with np.load(path) as data:
        found = {key: data[key].shape for key in data.files}
    wrong = {k: found.get(k) for k, shape in expected.items() if found.get(k) != shape}
    if wrong:
        raise ValueError(f"expected pose (144,), shape (10,), cam (3,); found {found}")
    return "pose (144,), shape (10,), cam (3,)"


def _check_gmm(path: Path) -> str:
    from models.prior import load_gmm_prior

    gmm = load_gmm_prior(path)  # ValueError with the reason (CRLF line endings, keys, shapes)
    return f"{len(gmm['weights'])} components, means {gmm['means'].shape}"


def _check_checkpoint(path: Path) -> str:
    from utils.io import torch_load_tensors

    try:
        ckpt = torch_load_tensors(path, "checkpoint")
    except Exception as err:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"torch.load failed: {err}") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"expected a dict with a 'model' state_dict, found {found}")
    from models.hmr import load_hmr_checkpoint

    model = load_hmr_checkpoint(path)  # strict: another architecture's weights are reported, not called valid
    return f"HMR {model.backbone}, 'model' with {len(ckpt['model'])} tensors"


def _check_cluster_res(path: Path) -> str:
    from utils.io import restricted_joblib_load

    res = restricted_joblib_load(path, "retrieval cluster file")
    centers = np.asarray(res["centers"])
    # D is the base model's pooled-feature width: 2048 for the released ResNet-50, 512 for ResNet-10/18/34
    if centers.ndim != 2 or centers.shape[1] not in (512, 2048) or len(res["index"]) != len(centers):
        raise ValueError(f"expected centers [K, 512 or 2048] and K member lists, found {centers.shape}, "
                         f"{len(res['index'])}")
    return f"{len(centers)} clusters"


def _check_exemplars(path: Path) -> str:
    from utils.io import restricted_joblib_load

    db = restricted_joblib_load(path, "exemplar database")
    missing = [k for k in EXEMPLAR_KEYS if k not in db]
    if missing:
        raise ValueError(f"keys {missing} missing (has {sorted(db)})")
    return f"{len(db['imgname'])} exemplars"


def _check_pw3d_npz(folder: Path) -> str:
    files = sorted(folder.glob("3dpw_*.npz"))
    if not files:
        raise FileNotFoundError(folder / "3dpw_*.npz")
    for file in files:
        with np.load(file) as data:
            missing = [k for k in PW3D_NPZ_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{file.name}: keys {missing} missing")
    return f"{len(files)} files"


def _dir_check(*children: str) -> Check:
    def check(folder: Path) -> str:
        if not folder.is_dir():
            raise ValueError("not a folder")
        absent = [c for c in children if not (folder / c).exists()]
        if absent:
            raise ValueError(f"no {', '.join(absent)} inside")
        return "folder" + (f" with {', '.join(children)}" if children else "")

    return check


def _h36m_root_check(exemplar_db: Path) -> Check:
    """The Human3.6M root has `images/`, and the first exemplar images of the database resolve under it."""

    def check(folder: Path) -> str:
        found = _dir_check("images")(folder)
        if not exemplar_db.is_file():
            return found
        from utils.io import restricted_joblib_load

        names = [str(n) for n in restricted_joblib_load(exemplar_db, "exemplar database")["imgname"][:5]]
        absent = [n for n in names if not (folder / n).is_file()]
        if absent:
            raise ValueError(f"{len(absent)} of the first {len(names)} exemplar images are not there "
                             f"(e.g. {absent[0]})")
        return found + f"; the first {len(names)} exemplar images found"

    return check


def _status(name: str, path: Path, check: Check | None, source: str, required: bool) -> AssetStatus:
    """Run `check` on `path` and describe the outcome."""
    if not path.exists():
        return AssetStatus(name, path, "missing", "not found", source, required)
    if check is None:
        return AssetStatus(name, path, "present", "not read", source, required)
    try:
        return AssetStatus(name, path, "valid", check(path), source, required)
    except FileNotFoundError as err:
        return AssetStatus(name, path, "missing", f"not found: {err}", source, required)
    except Exception as err:  # any failure to read or validate is reported, not raised
        return AssetStatus(name, path, "invalid", f"{type(err).__name__}: {err}", source, required)


def check_assets(paths: DataPaths, purpose: str, source_free: bool = False) -> list[AssetStatus]:
    """Every file a run for `purpose` ("3dpw", "internet" or "synthetic") reads, with its state.

    Args:
        paths: the data paths (`DataPaths.from_root(...)`).
        purpose: the run to check for; "synthetic" checks the 3DPW set of files of the synthetic root.
        source_free: the run uses no Human3.6M retrieval, so its files and images are optional.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    synthetic = purpose == "synthetic"
    benchmark = purpose in ("3dpw", "synthetic")

    def src(real: str) -> str:
        return SRC_SYNTHETIC if synthetic else real

    specs: list[tuple[str, Path, Check | None, str, bool]] = [
        (f"smpl/SMPL_{g}.pkl", paths.smpl_model_dir / f"SMPL_{g}.pkl", _check_smpl, src(SRC_SMPL),
         g == "NEUTRAL" or benchmark) for g in ("NEUTRAL", "MALE", "FEMALE")
    ]
    specs += [
        ("basemodel.pt", paths.base_model, _check_checkpoint, src(SRC_DRIVE), True),
        ("J_regressor_extra.npy", paths.j_regressor_extra, _array_check((9, SMPL_VERTICES)), src(SRC_SPIN), True),
        ("J_regressor_h36m.npy", paths.j_regressor_h36m, _array_check((17, SMPL_VERTICES)), src(SRC_SPIN),
         benchmark),
        ("smpl_mean_params.npz", paths.smpl_mean_params, _check_mean_params, src(SRC_SPIN), True),
        ("gmm_08.pkl", paths.gmm_prior, _check_gmm, src(SRC_GMM), True),
    ]
    if benchmark:
        specs += [("dataset_extras/3dpw_*.npz", paths.dataset_extras, _check_pw3d_npz, src(SRC_PW3D_NPZ), True),
                  ("3DPW root", paths.pw3d_root, _dir_check("imageFiles"), src(SRC_PW3D), True)]
    else:
        specs.append(("internet root", paths.internet_root, _dir_check(), SRC_INTERNET, True))
    retrieval_checks = {"cluster_res_random_sample_center_10_10_potocol2.pt": _check_cluster_res,
                        "h36m_random_sample_center_10_10.pt": _check_exemplars}
    for file_name in RETRIEVAL_FILES:
        used = not source_free and file_name in retrieval_checks
        specs.append((f"retrieval_res/{file_name}", paths.retrieval_dir / file_name, retrieval_checks.get(file_name),
                      src(SRC_DRIVE), used))
    h36m_check = _h36m_root_check(paths.retrieval_dir / "h36m_random_sample_center_10_10.pt")
    specs.append(("Human3.6M root", paths.h36m_root, h36m_check, src(SRC_H36M), not source_free))
    statuses = [_status(*spec) for spec in specs]
    logger.debug("checked %d assets under %s", len(statuses), paths.root)
    return statuses


def missing_required(statuses: list[AssetStatus]) -> list[AssetStatus]:
    """The required assets that are missing or invalid."""
    return [s for s in statuses if s.required and not s.ok]


def format_report(statuses: list[AssetStatus]) -> str:
    """A plain-text table: state, required/optional, name, what was found; path and source under each bad entry."""
    width = max(len(s.name) for s in statuses)
    lines = [f"{'state':8} {'need':8} {'asset':{width}}  details", "-" * (width + 40)]
    for s in statuses:
        lines.append(f"{s.state:8} {'required' if s.required else 'optional':8} {s.name:{width}}  {s.reason}")
        if not s.ok:
            lines.append(f"{'':18}path: {s.path}")
            lines.append(f"{'':18}get it from: {s.source}")
    usable = sum(s.ok for s in statuses)
    bad = missing_required(statuses)
    lines.append(f"{usable} of {len(statuses)} assets usable; "
                 + (f"{len(bad)} required missing or invalid" if bad else "nothing required is missing"))
    return "\n".join(lines)
