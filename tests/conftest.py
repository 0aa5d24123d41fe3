"""Shared pytest fixtures.

`body_root` writes the procedural SMPL-format body once per test session (the licensed SMPL model cannot be
shipped); tests of any module that needs SMPL use it as the data root (`config.DataPaths.from_root(body_root)`).
"""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def body_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary data root holding `smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl`, `J_regressor_extra.npy` and
    `J_regressor_h36m.npy` written by `datasets.synthetic.body_model.write_body_model`."""
    from datasets.synthetic.body_model import write_body_model

    root = tmp_path_factory.mktemp("body")
    write_body_model(root, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with the `tiny` synthetic world (both domains, preprocessed 3DPW npz) and the source priors
    (`smpl_mean_params.npz`, `gmm_08.pkl`); no base model (tests add the checkpoint they need)."""
    from datasets.preprocess.priors import make_priors
    from datasets.synthetic.generate import generate_world

    root = tmp_path_factory.mktemp("tiny_world")
    generate_world(root, preset="tiny", seed=0)
    make_priors(root, root)
    return root


@pytest.fixture(scope="session")
def world(tiny_world: Path) -> Path:
    """The tiny world plus a random ResNet-18 base model at 64 px (adaptation mechanics, not accuracy): the run,
    resume, parallel and cluster tests share it."""
    import torch

    from datasets.checkpoint import save_training_checkpoint
    from models.hmr import HMR, load_mean_params

    torch.manual_seed(0)
    model = HMR("resnet18", load_mean_params(tiny_world / "smpl_mean_params.npz"))
    save_training_checkpoint(tiny_world / "basemodel.pt", model, None, 0, 0, img_res=64)
    return tiny_world
