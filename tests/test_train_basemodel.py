"""train_basemodel.py, pipelines/training.py, datasets/preprocess/priors.py and datasets/checkpoint.py: loss decrease,
strict checkpoints, resume, priors, backbone init."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from config import DataPaths
from datasets.checkpoint import (
    FINAL_CHECKPOINT,
    LAST_CHECKPOINT,
    load_backbone_init,
    read_checkpoint_extras,
    save_training_checkpoint,
)
from datasets.preprocess.priors import make_priors, mean_rotations
from models.hmr import HMR, load_hmr_checkpoint, load_mean_params
from models.prior import MaxMixturePrior
from models.smpl import build_smpl
from pipelines.training import TrainConfig, build_model, compute_losses, read_metrics, train, validate
from utils.runtime import seed_everything
from tests.test_h36m_dataset import write_h36m_set
from train_basemodel import main, parse_args
from utils.geometry import rot6d_to_rotmat

RES = 32  # the smallest input the backbone takes: keeps the CPU tests fast


@pytest.fixture
def data_root(tmp_path: Path, body_root: Path) -> Path:
    """A data root with the procedural SMPL body (linked), 8 training and 4 validation frames."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "smpl").symlink_to(body_root / "smpl")
    (root / "J_regressor_extra.npy").symlink_to(body_root / "J_regressor_extra.npy")
    write_h36m_set(root, n=8, seed=0)
    write_h36m_set(root, n=4, seed=1, name="h36m_valid.npz")
    return root


def tiny_config(data_root: Path, run_dir: Path, **overrides) -> TrainConfig:
    cfg = TrainConfig(data_root=data_root, run_dir=run_dir, backbone="resnet18", img_res=RES, batch_size=4,
                      workers=0, lr=1e-4, steps=4, log_every=1, val_every=0, ckpt_every=1000, augment=False)
    return dataclasses.replace(cfg, **overrides)


def _eval_loss(model: HMR, cfg: TrainConfig, data_root: Path) -> float:
    from datasets.h36m import H36MDataset, load_h36m_annotations

    ds = H36MDataset(load_h36m_annotations(data_root / "dataset_extras" / "h36m_train.npz"), data_root / "h36m",
                     RES)
    batch = {key: torch.stack([ds[i][key] for i in range(len(ds))])
             for key in ("img", "keypoints", "pose", "betas", "pose_3d", "has_smpl")}
    smpl = build_smpl(DataPaths.from_root(data_root), "neutral")
    with torch.no_grad():
        return float(compute_losses(model.eval(), smpl, batch, cfg)[0])


def test_a_few_steps_lower_the_loss(data_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(data_root, tmp_path / "run", steps=8)
    seed_everything(cfg.seed)
    initial = build_model(cfg, DataPaths.from_root(data_root))  # the same initialisation as the run's
    before = _eval_loss(initial, cfg, data_root)
    after = _eval_loss(train(cfg), cfg, data_root)
    assert after < 0.8 * before, (before, after)
    record = read_metrics(tmp_path / "run")
    assert [r["step"] for r in record["train"]] == list(range(1, 9))
    assert set(record["train"][0]) >= {"total", "kp2d", "kp3d", "pose", "betas", "cam", "steps_per_s"}
    assert len(record["valid"]) == 1 and record["valid"][0]["step"] == 8  # validation at the end only
    assert (tmp_path / "run" / "config.json").is_file()


def test_checkpoint_round_trip_and_resume(data_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    model = train(tiny_config(data_root, run, steps=2, half=True))
    loaded = load_hmr_checkpoint(run / LAST_CHECKPOINT).eval()  # strict, backbone inferred from the keys
    x = torch.randn(2, 3, RES, RES)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.pred_rotmat, b.pred_rotmat) and torch.equal(a.pred_cam, b.pred_cam)
    extras = read_checkpoint_extras(run / LAST_CHECKPOINT)
    assert extras["step"] == 2 and extras["img_res"] == RES and extras["backbone"] == "resnet18"
    half = torch.load(run / FINAL_CHECKPOINT, weights_only=True)
    assert half["model"]["module.fc1.weight"].dtype == torch.float16 and "optimizer" not in half
    with torch.no_grad():
        assert torch.allclose(load_hmr_checkpoint(run / FINAL_CHECKPOINT).eval()(x).pred_cam, a.pred_cam, atol=1e-2)

    train(tiny_config(data_root, run, steps=3))  # resumes at step 2 and takes 1 more step
    extras = read_checkpoint_extras(run / LAST_CHECKPOINT)
    assert extras["step"] == 3
    adam_steps = {float(s["step"]) for s in extras["optimizer"]["state"].values()}
    assert adam_steps == {3.0}  # the optimiser state continued (2 + 1), it did not restart
    assert [r["step"] for r in read_metrics(run)["train"]] == [1, 2, 3]


def test_clipping_skipping_and_best_checkpoint(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    from pipelines import training

    run = tmp_path / "run"
    train(tiny_config(data_root, run, steps=2, val_every=1, grad_clip=1e-3))
    record = read_metrics(run)
    assert all(r["grad_norm"] > 1e-3 for r in record["train"])  # the norm is logged before clipping
    best = min(record["valid"], key=lambda v: v["pa_mpjpe"])
    assert read_checkpoint_extras(run / training.BEST_CHECKPOINT)["step"] == best["step"]

    # a non-finite loss skips the update: weights and Adam's state stay as they were
    real = training.compute_losses

    def poisoned(model, smpl, batch, cfg, step=None):
        loss, terms = real(model, smpl, batch, cfg, step)
        return loss * float("nan"), terms

    before = load_hmr_checkpoint(run / LAST_CHECKPOINT).state_dict()
    monkeypatch.setattr(training, "compute_losses", poisoned)
    train(tiny_config(data_root, run, steps=3, val_every=0))
    extras = read_checkpoint_extras(run / LAST_CHECKPOINT)
    assert extras["step"] == 3
    assert {float(s["step"]) for s in extras["optimizer"]["state"].values()} == {2.0}
    after = load_hmr_checkpoint(run / LAST_CHECKPOINT).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_kp2d_warmup_ramps_the_2d_weight(data_root: Path) -> None:
    from datasets.h36m import H36MDataset, load_h36m_annotations
    from pipelines.training import kp2d_ramp

    cfg = tiny_config(data_root, None, kp2d_warmup=4)
    assert [kp2d_ramp(cfg, s) for s in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kp2d_ramp(cfg, None) == 1.0 and kp2d_ramp(dataclasses.replace(cfg, kp2d_warmup=0), 0) == 1.0
    ds = H36MDataset(load_h36m_annotations(data_root / "dataset_extras" / "h36m_train.npz"), data_root / "h36m", RES)
    batch = {key: torch.stack([ds[i][key] for i in range(4)])
             for key in ("img", "keypoints", "pose", "betas", "pose_3d", "has_smpl")}
    torch.manual_seed(0)
    model = HMR("resnet18").eval()
    smpl = build_smpl(DataPaths.from_root(data_root), "neutral")
    with torch.no_grad():
        full, terms = compute_losses(model, smpl, batch, cfg)
        start, _ = compute_losses(model, smpl, batch, cfg, step=0)
        half, _ = compute_losses(model, smpl, batch, cfg, step=2)
    kp2d = cfg.loss_scale * cfg.kp2d_weight * terms["kp2d"]
    assert float(full - start) == pytest.approx(kp2d, rel=1e-4)
    assert float(full - half) == pytest.approx(kp2d / 2, rel=1e-4)


def test_validation_reports_millimetres(data_root: Path) -> None:
    from torch.utils.data import DataLoader

    from datasets.h36m import H36MDataset, load_h36m_annotations

    ds = H36MDataset(load_h36m_annotations(data_root / "dataset_extras" / "h36m_valid.npz"), data_root / "h36m",
                     RES)
    torch.manual_seed(0)
    model = HMR("resnet18").eval()
    metrics = validate(model, build_smpl(DataPaths.from_root(data_root), "neutral"), DataLoader(ds, batch_size=3),
                       torch.device("cpu"))
    # fixture joints lie within +-0.45 m of the origin and the random model is far off: errors of 100s of mm
    assert 50.0 < metrics["pa_mpjpe"] <= metrics["mpjpe"] < 2000.0
    assert 0.0 <= metrics["root_deg_median"] <= 180.0


def test_mean_rotation_of_opposite_turns_is_identity() -> None:
    c, s = np.cos(0.5), np.sin(0.5)
    plus = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    # mean of Rz(+0.5) and Rz(-0.5) is diag(c, c, 1), whose nearest rotation is the identity
    mean = mean_rotations(np.stack([plus, plus.T])[:, None])
    assert np.allclose(mean[0], np.eye(3))
    assert np.allclose(mean_rotations(np.stack([plus, plus])[:, None])[0], plus)


def test_make_priors_writes_readable_deterministic_files(data_root: Path, tmp_path: Path) -> None:
    data = dict(np.load(data_root / "dataset_extras" / "h36m_train.npz"))
    rng = np.random.default_rng(5)
    n = 40
    data.update(pose=rng.normal(0, 0.2, (n, 72)), shape=rng.normal(0, 1, (n, 10)), has_smpl=np.ones(n),
                **{k: np.resize(data[k], (n,) + data[k].shape[1:]) for k in ("imgname", "center", "scale", "part",
                                                                            "S")})
    data["pose"][:, :3] = (0.3, 0.0, 0.0)  # one global orientation for every frame: its mean is itself
    np.savez(data_root / "dataset_extras" / "h36m_train.npz", **data)
    assert main(["--data-root", str(data_root), "--make-priors", "--out", str(tmp_path / "a")]) == 0
    make_priors(data_root, tmp_path / "b")
    for name in ("smpl_mean_params.npz", "gmm_08.pkl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    mean = load_mean_params(tmp_path / "a" / "smpl_mean_params.npz")
    root = rot6d_to_rotmat(torch.from_numpy(mean["pose"]).view(24, 6))[0].numpy()
    c, s = np.cos(0.3), np.sin(0.3)
    assert np.allclose(root, [[1, 0, 0], [0, c, -s], [0, s, c]], atol=1e-6)  # 0.3 rad about x
    assert np.allclose(mean["shape"], data["shape"].mean(axis=0), atol=1e-6)
    assert np.allclose(mean["cam"], [0.9, 0.0, 0.0])
    prior = MaxMixturePrior.from_file(tmp_path / "a" / "gmm_08.pkl")
    assert prior.means.shape == (8, 69)
    assert torch.isfinite(prior(torch.from_numpy(data["pose"][:4, 3:]))).all()


def _torchvision_style(model: HMR) -> dict[str, torch.Tensor]:
    """A ResNet state dict as torchvision names it: BN statistics next to weight/bias, and a classifier `fc`."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(("conv1.", "bn1.", "layer")):
            state[key] = value.clone() + 0.5
            if key.endswith("bn1.weight") or ".bn" in key or "downsample.1.weight" in key:
                stem = key.rsplit(".", 1)[0]
                state[stem + ".running_mean"] = torch.zeros_like(value)
                state[stem + ".running_var"] = torch.ones_like(value)
                state[stem + ".num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, model.feature_dim), torch.zeros(1000)
    return state


def test_backbone_init_maps_batch_norm_to_group_norm(tmp_path: Path) -> None:
    source = HMR("resnet18")
    state = _torchvision_style(source)
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, tmp_path / "r18.pth")
    target = HMR("resnet18")
    fc1_before = target.fc1.weight.clone()
    report = load_backbone_init(target, tmp_path / "r18.pth")
    assert torch.equal(target.layer2[0].bn1.weight, state["layer2.0.bn1.weight"])  # BN affine -> GN affine
    assert torch.equal(target.layer3[0].downsample[0].weight, state["layer3.0.downsample.0.weight"])
    assert torch.equal(target.fc1.weight, fc1_before)  # the regressor is untouched
    n_backbone = sum(k.startswith(("conv1.", "bn1.", "layer")) for k in target.state_dict())
    assert len(report.loaded) == n_backbone and report.not_in_file == []
    assert report.ignored["fc.weight"] == "not a backbone tensor of the model"
    assert report.ignored["bn1.running_var"] == "batch-norm statistics"
    torch.save(_torchvision_style(HMR("resnet50")), tmp_path / "r50.pth")
    with pytest.raises(ValueError, match="different ResNet depth"):
        load_backbone_init(HMR("resnet18"), tmp_path / "r50.pth")


def test_command_line(tmp_path: Path) -> None:
    cfg = parse_args(["--data-root", str(tmp_path), "--run-dir", str(tmp_path / "r"), "--backbone", "resnet18",
                      "--img-res", "128", "--no-augment", "--half", "--init-backbone", str(tmp_path / "w.pth")])
    assert cfg.backbone == "resnet18" and cfg.img_res == 128 and not cfg.augment and cfg.half
    assert cfg.init_backbone == tmp_path / "w.pth" and cfg.lr == 5e-5 and cfg.loss_scale == 60.0
    with pytest.raises(ValueError, match="--run-dir"):
        train(TrainConfig(data_root=tmp_path))


def test_evaluate_mean_pose_and_a_checkpoint(tiny_world, tmp_path):
    """`--evaluate` validates a checkpoint (or the untrained mean pose) on h36m_valid.npz; a checkpoint of the same
    fresh network must score exactly what `mean-pose` scores."""
    from pipelines import training as tb

    cfg = parse_args(["--data-root", str(tiny_world), "--backbone", "resnet10", "--img-res", "64",
                         "--workers", "0", "--seed", "0", "--evaluate", "mean-pose"])
    torch.manual_seed(0)
    mean = tb.evaluate(cfg)
    assert set(mean) == {"mpjpe", "pa_mpjpe", "root_deg_median"} and 0 < mean["pa_mpjpe"] <= mean["mpjpe"]
    torch.manual_seed(1)  # the mean pose does not depend on the random initialisation
    model = tb.mean_pose_model(cfg, DataPaths.from_root(tiny_world))
    mean_params = load_mean_params(tiny_world / "smpl_mean_params.npz")
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 64, 64))
    expected = rot6d_to_rotmat(torch.from_numpy(mean_params["pose"]).view(1, -1)).view(1, 24, 3, 3)
    assert torch.allclose(out.pred_rotmat, expected.expand(2, -1, -1, -1),
                          atol=1e-5)
    save_training_checkpoint(tmp_path / "m.pt", model, None, 0, 0, img_res=64)
    ckpt = tb.evaluate(dataclasses.replace(cfg, evaluate=str(tmp_path / "m.pt")))
    assert ckpt == pytest.approx(mean)
    with torch.no_grad():  # a different checkpoint must score differently (the file is really read)
        model.decpose.bias.add_(0.5)
    save_training_checkpoint(tmp_path / "m2.pt", model, None, 0, 0, img_res=64)
    moved = tb.evaluate(dataclasses.replace(cfg, evaluate=str(tmp_path / "m2.pt")))
    assert moved["pa_mpjpe"] != pytest.approx(mean["pa_mpjpe"])
