"""config: paths from one root, the dataclass CLI with both spellings, YAML override."""
from __future__ import annotations

from pathlib import Path

import pytest

import config
from config import AdaptConfig, build_parser, config_from_namespace, config_to_dict
from utils.io import write_json


def test_paths_follow_one_root(monkeypatch, tmp_path):
    monkeypatch.setenv("DYNABOA_DATA", str(tmp_path))
    for var in ("PW3D_ROOT", "H36M_ROOT", "INTERNET_ROOT"):
        monkeypatch.delenv(var, raising=False)
    paths = config.DataPaths.from_root()
    assert paths.root == tmp_path.resolve()
    assert paths.smpl_model_dir == tmp_path.resolve() / "smpl"
    assert paths.base_model.name == "basemodel.pt" and paths.pw3d_root == tmp_path.resolve() / "3dpw"
    monkeypatch.setenv("PW3D_ROOT", "/somewhere/3DPW")
    assert config.DataPaths.from_root(tmp_path).pw3d_root == Path("/somewhere/3DPW")


def test_gmm_prior_found_in_spin_data_folder(tmp_path):
    (tmp_path / "spin_data").mkdir()
    (tmp_path / "spin_data" / "gmm_08.pkl").write_text("x")
    assert config.DataPaths.from_root(tmp_path).gmm_prior == tmp_path.resolve() / "spin_data" / "gmm_08.pkl"


def _parse(argv, yaml_path=None):
    parser = build_parser("test", [(AdaptConfig, "adaptation")])
    ns = parser.parse_args(argv)
    return config_from_namespace(AdaptConfig, ns, yaml_path or ns.config)


def test_defaults_are_the_original_3dpw_settings():
    cfg = _parse([])
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.fastlr) == (3e-6, 0.5, 0.9, 8e-6)
    assert cfg.use_boa and cfg.dynamic_boa and cfg.retrieval and cfg.optim_steps == 7
    assert cfg.cos_sim_threshold == 3.1e-4 and cfg.interval == 5 and cfg.alpha == 0.1


def test_both_flag_spellings():
    assert _parse(["--no-use-boa"]).use_boa is False
    assert _parse(["--use_boa", "0", "--dynamic_boa", "1"]).use_boa is False
    assert _parse(["--retrieval", "0"]).retrieval is False and _parse(["--retrieval"]).retrieval is True
    assert _parse(["--no-retrieval"]).retrieval is False and _parse(["--use-boa", "1"]).use_boa is True
    cfg = _parse(["--optim_steps", "3", "--cos-sim-threshold", "0.002"])
    assert cfg.optim_steps == 3 and cfg.cos_sim_threshold == 0.002
    with pytest.raises(SystemExit):
        _parse(["--use_boa", "maybe"])


def test_help_shows_the_spellings_users_type():
    """Booleans read `--x / --no-x` in help and usage; the `{0,1}` value and the `--x_y` spelling stay hidden."""
    from pipelines.live import WebcamConfig
    parser = build_parser("t", [(WebcamConfig, "webcam"), (AdaptConfig, "adaptation")])
    text = parser.format_help()
    assert "--display / --no-display" in text and "[--display | --no-display]" in text
    assert "--use-boa / --no-use-boa" in text and "[--use-boa | --no-use-boa]" in text
    assert "{0,1}" not in text and "--use_boa" not in text and "--lr LR" in text
    assert parser.parse_args(["--no-display"]).display is False
    assert parser.parse_args(["--use_boa", "0", "--use-meanteacher", "1"]).use_boa is False
    assert parser.parse_args(["--display", "0"]).display is False
    assert parser.parse_args(["--display"]).display is True


def test_yaml_override_then_command_line_wins(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("optim_steps: 2\nmotionloss_weight: 0.5\n")
    cfg = _parse(["--config", str(yml), "--optim-steps", "4"])
    assert cfg.optim_steps == 4 and cfg.motionloss_weight == 0.5
    (tmp_path / "bad.yaml").write_text("no_such_option: 1\n")
    with pytest.raises(ValueError, match="no_such_option"):
        _parse(["--config", str(tmp_path / "bad.yaml")])


def test_saved_config_reloads(tmp_path):
    cfg = _parse(["--interval", "3"])
    write_json(tmp_path / "config.json", config_to_dict(cfg))  # a run's config.json is also an options file
    assert _parse(["--config", str(tmp_path / "config.json")]) == cfg
