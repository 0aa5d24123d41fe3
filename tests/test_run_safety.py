"""dynaboa.py never loses a run: refused reruns, resume that checks its options, one-line errors, Ctrl-C, a full
disk, the resume state's lifecycle. The tiny synthetic world with a random ResNet-18 at 64 px."""
from __future__ import annotations

import csv
import errno
import json
import shlex

import pytest

import dynaboa
from models.adaptor import Adaptor


def argv(world, out, name, *extra):
    return ["--data-root", str(world), "--expdir", str(out), "--expname", name, "--source-free", "--workers", "0",
            "--device", "cpu", "--threads", "1", *extra]


def rows(path):
    with open(path / "frames.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("dynaboa.py")]


def test_resume_refuses_changed_options_and_keeps_config(world, tmp_path, capsys):
    assert dynaboa.main(argv(world, tmp_path, "r", "--max-frames", "2", "--chunk", "1", "--keep-state")) == 0
    recorded = (tmp_path / "r" / "config.json").read_bytes()
    capsys.readouterr()
    changed = argv(world, tmp_path, "r", "--max-frames", "3", "--resume", "--s2dloss_weight", "5", "--lr", "1e-5")
    assert dynaboa.main(changed) == 1
    [line] = error_lines(capsys)
    assert "s2dloss_weight 10.0 -> 5.0" in line and "lr 3e-06 -> 1e-05" in line and "--allow-changed-options" in line
    assert (tmp_path / "r" / "config.json").read_bytes() == recorded and len(rows(tmp_path / "r")) == 2
    # options that do not change results may differ (chunk, workers, max-frames)
    assert dynaboa.main(argv(world, tmp_path, "r", "--max-frames", "3", "--chunk", "2", "--resume",
                             "--keep-state")) == 0
    assert len(rows(tmp_path / "r")) == 3
    # the explicit override continues and is recorded next to the original values
    assert dynaboa.main(argv(world, tmp_path, "r", "--max-frames", "4", "--resume", "--lr", "1e-5",
                             "--allow-changed-options")) == 0
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["adapt"]["lr"] == 3e-6 and record["resume_overrides"] == [{"lr": {"recorded": 3e-6, "now": 1e-5}}]


def test_ctrl_c_prints_the_resume_command_that_works(world, tmp_path, capsys, monkeypatch):
    real_step, calls = Adaptor.step, []

    def interrupted(self, frame, **options):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(self, frame, **options)

    monkeypatch.setattr(Adaptor, "step", interrupted)
    assert dynaboa.main(argv(world, tmp_path, "c", "--max-frames", "4", "--chunk", "1")) == 130
    [line] = error_lines(capsys)
    command = shlex.split(line.split("with: ", 1)[1])
    assert command[1].endswith("dynaboa.py") and command[-1] == "--resume"
    monkeypatch.setattr(Adaptor, "step", real_step)
    assert dynaboa.main(command[2:]) == 0
    assert [int(r["index"]) for r in rows(tmp_path / "c")] == [0, 1, 2, 3]


def test_full_disk_is_one_line_and_leaves_no_temporary_file(world, tmp_path, capsys, monkeypatch):
    def full(obj, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("datasets.results.torch.save", full)
    assert dynaboa.main(argv(world, tmp_path, "d", "--max-frames", "2", "--chunk", "1")) == 1
    [line] = error_lines(capsys)
    assert "no space left" in line and "state.pt" in line and "--resume" in line
    assert not [p for p in (tmp_path / "d").rglob("*") if ".tmp" in p.name]
    assert not (tmp_path / "d" / "state.pt").exists()


def test_state_deleted_at_the_end_unless_kept(world, tmp_path, capsys):
    assert dynaboa.main(argv(world, tmp_path, "s", "--max-frames", "2", "--chunk", "1")) == 0
    assert not (tmp_path / "s" / "state.pt").exists() and (tmp_path / "s" / "results.npz").is_file()
    # a finished run: --resume with the same frames has nothing to do; extending it needs the deleted state
    mtime = (tmp_path / "s" / "metrics.json").stat().st_mtime_ns
    assert dynaboa.main(argv(world, tmp_path, "s", "--max-frames", "2", "--resume")) == 0
    assert (tmp_path / "s" / "metrics.json").stat().st_mtime_ns == mtime
    capsys.readouterr()
    assert dynaboa.main(argv(world, tmp_path, "s", "--max-frames", "3", "--resume")) == 1
    [line] = error_lines(capsys)
    assert "--keep-state" in line and "--overwrite" in line and len(rows(tmp_path / "s")) == 2
    assert dynaboa.main(argv(world, tmp_path, "k", "--max-frames", "2", "--keep-state")) == 0
    assert (tmp_path / "k" / "state.pt").is_file()


def test_corrupt_state_names_the_file(world, tmp_path, capsys):
    assert dynaboa.main(argv(world, tmp_path, "z", "--max-frames", "2", "--keep-state")) == 0
    (tmp_path / "z" / "state.pt").write_bytes(b"not a torch file")
    capsys.readouterr()
    assert dynaboa.main(argv(world, tmp_path, "z", "--max-frames", "3", "--resume")) == 1
    [line] = error_lines(capsys)
    assert str(tmp_path / "z" / "state.pt") in line and "--overwrite" in line


def test_resume_rewrites_frames_csv_atomically(world, tmp_path, capsys, monkeypatch):
    assert dynaboa.main(argv(world, tmp_path, "a", "--max-frames", "3", "--chunk", "2", "--keep-state")) == 0
    (tmp_path / "a" / "metrics.json").unlink()  # as if interrupted after frame 3 (state saved after frame 2)
    before = (tmp_path / "a" / "frames.csv").read_bytes()

    def full(self, rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", full)
    assert dynaboa.main(argv(world, tmp_path, "a", "--max-frames", "3", "--resume")) == 1
    [line] = error_lines(capsys)
    assert "no space left" in line and "frames.csv" in line
    assert (tmp_path / "a" / "frames.csv").read_bytes() == before
    assert not [p for p in (tmp_path / "a").iterdir() if ".tmp" in p.name]


def test_overwrite_replaces_the_run(world, tmp_path):
    assert dynaboa.main(argv(world, tmp_path, "o", "--max-frames", "2", "--chunk", "1")) == 0
    assert dynaboa.main(argv(world, tmp_path, "o", "--max-frames", "1", "--overwrite")) == 0
    assert len(rows(tmp_path / "o")) == 1 and sorted(p.name for p in (tmp_path / "o" / "preds").iterdir()) == [
        "000000.npz"]


@pytest.mark.parametrize("bad", [["--chunk", "0"], ["--lr", "-1"], ["--optim_steps", "-1"], ["--max-frames", "-5"],
                                 ["--jobs", "0"], ["--resume", "--overwrite"]])
def test_bad_option_values_fail_at_parse_time(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dynaboa.parse_args(bad)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: " in err and (bad[0] in err or bad[0].replace("_", "-") in err)


def test_config_records_provenance(world, tmp_path):
    assert dynaboa.main(argv(world, tmp_path, "p", "--max-frames", "1")) == 0
    prov = json.loads((tmp_path / "p" / "config.json").read_text())["provenance"]
    assert prov["base_model"] == str((world / "basemodel.pt").resolve()) and len(prov["base_model_sha256"]) == 64
    assert prov["body_model_kind"].startswith("procedural") and prov["synthetic_only"] is False


def test_resume_accepts_an_option_added_after_the_run_at_its_default():
    """A record made before an adaptation option existed compares equal while the option stays at its default, and
    differs once it is changed."""
    from config import AdaptConfig, config_to_dict
    from datasets.runrecord import resume_differences

    current = {"adapt": config_to_dict(AdaptConfig()), "run": {}, "img_res": 128, "frames": 10}
    old = {**current, "adapt": {k: v for k, v in current["adapt"].items() if k != "anchor_rate"}}
    assert resume_differences(old, current) == {}
    changed = {**current, "adapt": {**current["adapt"], "anchor_rate": 0.01}}
    assert resume_differences(old, changed) == {"anchor_rate": (0.0, 0.01)}
