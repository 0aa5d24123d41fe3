"""Tests of models/hmr.py: state-dict layout, strict checkpoint loading, named features, batch handling."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.checkpoint import save_hmr_checkpoint
from models.hmr import (
    HMR,
    CheckpointError,
    infer_backbone,
    load_hmr_checkpoint,
    load_mean_params,
    save_mean_params,
)
from utils.geometry import rot6d_to_rotmat

RES = 64  # small crops keep the CPU tests fast; the network pools the whole final map


def expected_resnet50_keys() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the original state dict, written out from the description in docs/method.md §8.2."""
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), "bn1.weight": (64,), "bn1.bias": (64,)}
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            cin = inplanes if b == 0 else planes * 4
            p = f"layer{layer}.{b}."
            keys[p + "conv1.weight"] = (planes, cin, 1, 1)
            keys[p + "conv2.weight"] = (planes, planes, 3, 3)
            keys[p + "conv3.weight"] = (planes * 4, planes, 1, 1)
            for norm, channels in (("bn1", planes), ("bn2", planes), ("bn3", planes * 4)):
                keys[p + norm + ".weight"] = (channels,)
                keys[p + norm + ".bias"] = (channels,)
            if b == 0:
                keys[p + "downsample.0.weight"] = (planes * 4, cin, 1, 1)
                keys[p + "downsample.1.weight"] = (planes * 4,)
                keys[p + "downsample.1.bias"] = (planes * 4,)
        inplanes = planes * 4
    keys.update({
        "fc1.weight": (1024, 2205), "fc1.bias": (1024,), "fc2.weight": (1024, 1024), "fc2.bias": (1024,),
        "decpose.weight": (144, 1024), "decpose.bias": (144,), "decshape.weight": (10, 1024),
        "decshape.bias": (10,), "deccam.weight": (3, 1024), "deccam.bias": (3,),
        "init_pose": (1, 144), "init_shape": (1, 10), "init_cam": (1, 3),
    })
    return keys


@pytest.fixture(scope="module")
def resnet50() -> HMR:
    torch.manual_seed(0)
    return HMR("resnet50").eval()


@pytest.fixture(scope="module")
def resnet18() -> HMR:
    torch.manual_seed(1)
    return HMR("resnet18").eval()


def _images(batch: int, res: int = RES, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(seed))


def test_state_dict_equals_original_layout(resnet50: HMR) -> None:
    found = {key: tuple(value.shape) for key, value in resnet50.state_dict().items()}
    assert found == expected_resnet50_keys()
    assert not any("running" in key or "num_batches" in key for key in found)  # GN, no BN statistics


def test_initialisation(resnet50: HMR) -> None:
    assert torch.all(resnet50.bn1.weight == 1) and torch.all(resnet50.bn1.bias == 0)
    # He normal: std sqrt(2 / (k*k*out)) = sqrt(2 / (3*3*512)) = 0.0208 for layer4's 3x3 convs
    std = resnet50.layer4[1].conv2.weight.std().item()
    assert abs(std - (2 / (9 * 512)) ** 0.5) < 0.001
    # xavier_uniform gain 0.01: bound = 0.01 * sqrt(6 / (1024 + 144)) = 7.17e-4
    assert resnet50.decpose.weight.abs().max().item() <= 0.01 * (6 / 1168) ** 0.5 + 1e-9


def test_zero_decoders_return_the_mean_init(tmp_path: Path) -> None:
    pose6d = np.random.default_rng(0).normal(size=144).astype(np.float32)
    save_mean_params(tmp_path / "mean.npz", pose6d, np.arange(10, dtype=np.float32), np.array([0.9, 0.1, -0.2]))
    model = HMR("resnet18", load_mean_params(tmp_path / "mean.npz")).eval()
    for decoder in (model.decpose, model.decshape, model.deccam):
        torch.nn.init.zeros_(decoder.weight)
        torch.nn.init.zeros_(decoder.bias)
    with torch.no_grad():
        out = model(_images(2))
    rotmat = out.pred_rotmat
    assert torch.allclose(rotmat, rot6d_to_rotmat(torch.from_numpy(pose6d)).expand(2, 24, 3, 3))
    eye = torch.eye(3).expand(2, 24, 3, 3)
    assert torch.allclose(rotmat @ rotmat.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotmat), torch.ones(2, 24), atol=1e-5)
    assert torch.equal(out.pred_betas, torch.arange(10.0).expand(2, 10))
    assert torch.allclose(out.pred_cam, torch.tensor([0.9, 0.1, -0.2]).expand(2, 3))


def test_features_are_named_with_shapes(resnet50: HMR) -> None:
    with torch.no_grad():
        out = resnet50(_images(2, 224), return_features=True)
    shapes = {key: tuple(value.shape) for key, value in out.features.items()}
    expected = {
        "conv1": (2, 64, 112, 112), "layer1": (2, 256, 56, 56), "layer2": (2, 512, 28, 28),
        "layer3": (2, 1024, 14, 14), "layer4": (2, 2048, 7, 7), "xf": (2, 2048),
    }
    expected.update({f"{name}_iter{k}": (2, 1024) for k in (1, 2, 3) for name in ("fc1", "drop1", "fc2")})
    assert shapes == expected
    assert torch.equal(out.features["xf"], out.feature)
    assert resnet50(_images(1)).features == {}


def test_fc1_iter3_is_the_third_fc1_output(resnet18: HMR) -> None:
    x = _images(1)
    with torch.no_grad():
        two = resnet18(x, n_iter=2)
        three = resnet18(x, n_iter=3, return_features=True)
        expected = resnet18.fc1(torch.cat([two.feature, two.pred_pose6d, two.pred_betas, two.pred_cam], dim=1))
    assert torch.allclose(three.features["fc1_iter3"], expected, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_batch_sizes_give_per_sample_results(resnet18: HMR, batch: int) -> None:
    x = _images(batch, seed=batch)
    with torch.no_grad():
        out = resnet18(x)
        singles = [resnet18(x[i:i + 1]) for i in range(batch)]
    assert out.pred_rotmat.shape == (batch, 24, 3, 3)
    assert out.pred_pose6d.shape == (batch, 144)
    assert out.pred_betas.shape == (batch, 10)
    assert out.pred_cam.shape == (batch, 3)
    assert out.feature.shape == (batch, 512)
    # GroupNorm has no batch statistics: each sample is independent of the others
    assert torch.allclose(out.pred_cam, torch.cat([s.pred_cam for s in singles]), atol=1e-5)
    assert torch.allclose(out.pred_rotmat, torch.cat([s.pred_rotmat for s in singles]), atol=1e-5)


def test_given_init_is_used(resnet18: HMR) -> None:
    x = _images(2)
    with torch.no_grad():
        default = resnet18(x)
        shifted = resnet18(x, init_cam=resnet18.init_cam.expand(2, 3) + 1.0)
    assert not torch.allclose(default.pred_cam, shifted.pred_cam)


def test_eval_is_deterministic_and_train_dropout_is_not(resnet18: HMR) -> None:
    x = _images(1)
    with torch.no_grad():
        assert torch.equal(resnet18(x).pred_pose6d, resnet18(x).pred_pose6d)
        resnet18.train()
        try:
            first, second = resnet18(x).pred_pose6d, resnet18(x).pred_pose6d
        finally:
            resnet18.eval()
    assert not torch.equal(first, second)


def test_128px_input(resnet50: HMR) -> None:
    with torch.no_grad():
        out = resnet50(_images(1, 128), return_features=True)
    assert out.features["layer4"].shape == (1, 2048, 4, 4)
    assert out.feature.shape == (1, 2048)
    assert torch.isfinite(out.pred_rotmat).all()


def test_original_layout_loads_strictly_with_identical_predictions(resnet50: HMR, tmp_path: Path) -> None:
    path = tmp_path / "basemodel.pt"
    save_hmr_checkpoint(resnet50, path, extra={"epoch": 90})
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["epoch"] == 90
    assert all(key.startswith("module.") for key in raw["model"])
    loaded = load_hmr_checkpoint(path).eval()  # backbone inferred from the keys
    assert loaded.backbone == "resnet50"
    x = _images(2)
    with torch.no_grad():
        assert torch.equal(loaded(x).pred_rotmat, resnet50(x).pred_rotmat)


@pytest.mark.parametrize("layout", ["unprefixed", "bare"])
def test_other_layouts_load(resnet18: HMR, tmp_path: Path, layout: str) -> None:
    state = resnet18.state_dict()
    torch.save({"model": state} if layout == "unprefixed" else state, tmp_path / "ckpt.pt")
    loaded = load_hmr_checkpoint(tmp_path / "ckpt.pt", HMR("resnet18"))
    assert all(torch.equal(value, loaded.state_dict()[key]) for key, value in state.items())


def test_half_precision_checkpoint_loads(resnet18: HMR, tmp_path: Path) -> None:
    save_hmr_checkpoint(resnet18, tmp_path / "half.pt", half=True)
    assert torch.load(tmp_path / "half.pt", weights_only=True)["model"]["module.fc1.weight"].dtype == torch.float16
    loaded = load_hmr_checkpoint(tmp_path / "half.pt").eval()
    assert loaded.fc1.weight.dtype == torch.float32
    assert torch.equal(loaded.fc1.weight, resnet18.fc1.weight.half().float())
    with torch.no_grad():
        assert torch.allclose(loaded(_images(1)).pred_cam, resnet18(_images(1)).pred_cam, atol=1e-2)


def test_resnet18_into_resnet50_reports_keys(resnet18: HMR, resnet50: HMR, tmp_path: Path) -> None:
    save_hmr_checkpoint(resnet18, tmp_path / "r18.pt")
    with pytest.raises(CheckpointError) as info:
        load_hmr_checkpoint(tmp_path / "r18.pt", HMR("resnet50"))
    message = str(info.value)
    assert "missing keys" in message and "layer1.0.conv3.weight" in message
    # resnet18's layer1.0.conv1 is 3x3 on 64 channels; resnet50's is 1x1
    assert "layer1.0.conv1.weight: expected (64, 64, 1, 1), found (64, 64, 3, 3)" in message
    assert "... and" in message  # long lists are truncated


def test_random_and_missing_files_fail_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_hmr_checkpoint(path)
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_hmr_checkpoint(tmp_path / "text.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_hmr_checkpoint(tmp_path / "empty.pt")
    torch.save({"optimizer": {"lr": 1.0}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="holds no HMR state dict"):
        load_hmr_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="basemodel.pt"):
        load_hmr_checkpoint(tmp_path / "absent.pt")


def test_infer_backbone(resnet18: HMR) -> None:
    assert infer_backbone(resnet18.state_dict()) == "resnet18"
    assert infer_backbone(HMR("resnet34").state_dict()) == "resnet34"
    with pytest.raises(CheckpointError, match="cannot infer"):
        infer_backbone({"layer1.0.conv1.weight": torch.zeros(1)})


def test_mean_params_round_trip_and_errors(tmp_path: Path) -> None:
    pose, shape, cam = np.ones(144), np.full(10, 0.5), np.array([0.9, 0.0, 0.0])
    save_mean_params(tmp_path / "mean.npz", pose, shape, cam)
    params = load_mean_params(tmp_path / "mean.npz")
    assert params["pose"].shape == (144,) and params["pose"].dtype == np.float32
    assert np.array_equal(params["shape"], shape.astype(np.float32))
    assert np.allclose(params["cam"], cam)
    np.savez(tmp_path / "nocam.npz", pose=pose, shape=shape)
    with pytest.raises(ValueError, match="missing keys \\['cam'\\]"):
        load_mean_params(tmp_path / "nocam.npz")
    np.savez(tmp_path / "badshape.npz", pose=np.ones(72), shape=shape, cam=cam)
    with pytest.raises(ValueError, match="'pose' has shape \\(72,\\), expected \\(144,\\)"):
        load_mean_params(tmp_path / "badshape.npz")
    with pytest.raises(FileNotFoundError, match="smpl_mean_params.npz"):
        load_mean_params(tmp_path / "absent.npz")
