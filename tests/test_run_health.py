"""No silent garbage, no silent no-op, the machine's own failures in one line, at the level of dynaboa.py
and the pieces run_on_internet.sh is made of: divergence stops the run, mostly-skipped updates are said, an option
given on --resume takes effect or is refused, a real file-size limit and other operating-system errors are one line,
reasons name what is wrong (damaged, not dangerous; unreadable, not damaged), any video name exports, the experiment
folder's claim (lock, manifest, --overwrite by the manifest) and the script's option check."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import dynaboa
from datasets import experiment
from datasets.experiment import MANIFEST, ExperimentBusy, ExperimentExists, NoExperiment, claim, lock
from datasets.runrecord import RunError
from pipelines import own_video
from tests.test_run_safety import argv, error_lines, rows
from utils.io import UnsafePickleError, torch_load_tensors

REPO = Path(__file__).resolve().parents[1]


# --- case 4: divergence -----------------------------------------------------------------------------------------------


def test_diverging_rate_stops_with_one_line_and_writes_no_result(world, tmp_path, capsys):
    assert dynaboa.main(argv(world, tmp_path, "n", "--max-frames", "3", "--lr", "1e3")) == 1
    [line] = error_lines(capsys)
    assert "adaptation diverged at frame 0" in line and "--lr 1000" in line and "not finite" in line
    assert not (tmp_path / "n" / "results.npz").exists() and rows(tmp_path / "n") == []


def test_mostly_skipped_updates_are_said_at_the_end(world, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="dynaboa"):
        assert dynaboa.main(argv(world, tmp_path, "k", "--max-frames", "6", "--lr", "1e-2")) == 0
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "updates" in r.getMessage()]
    assert "of 6 updates were skipped" in warning and "--lr 0.01" in warning


def test_export_refuses_non_finite_results(tmp_path):
    from datasets.results import RESULT_KEYS, load_results

    arrays = {key: np.zeros((2, 3)) for key in RESULT_KEYS}
    arrays.update(rotmat=np.zeros((2, 24, 3, 3)), betas=np.zeros((2, 10)), cam_t_full=np.zeros((2, 3)))
    arrays["rotmat"][1] = np.nan
    np.savez(tmp_path / "results.npz", **arrays)
    with pytest.raises(ValueError, match="1 of 2 frames hold non-finite predictions"):
        load_results(tmp_path)


# --- case 5: an option takes effect or is refused -------------------------------------------------------------------


def test_changed_rate_on_resume_takes_effect(world, tmp_path):
    base = argv(world, tmp_path, "a", "--max-frames", "2", "--chunk", "1", "--keep-state")
    assert dynaboa.main(base) == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert dynaboa.main(argv(world, tmp_path, "a", "--max-frames", "4", "--resume")) == 0
    assert dynaboa.main(argv(world, tmp_path, "b", "--max-frames", "4", "--resume", "--lr", "1e-4",
                             "--allow-changed-options", "--keep-state")) == 0
    plain, changed = (np.load(tmp_path / n / "results.npz")["pose"] for n in ("a", "b"))
    assert np.array_equal(plain[:2], changed[:2]) and not np.allclose(plain[2:], changed[2:])
    state = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    assert state["adaptor"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_allow_changed_cannot_change_what_the_state_fixes(world, tmp_path, capsys):
    assert dynaboa.main(argv(world, tmp_path, "s", "--max-frames", "1", "--keep-state")) == 0
    capsys.readouterr()
    assert dynaboa.main(argv(world, tmp_path, "s", "--max-frames", "2", "--resume", "--seed", "5",
                             "--allow-changed-options")) == 1
    [line] = error_lines(capsys)
    assert "cannot change seed on --resume" in line and "--overwrite" in line


def test_resume_without_a_run_is_refused_with_a_command_that_starts_it(world, tmp_path, capsys):
    assert dynaboa.main(argv(world, tmp_path, "none", "--max-frames", "1", "--resume")) == 1
    [line] = error_lines(capsys)
    assert "holds no run to continue" in line and not (tmp_path / "none").exists()
    command = shlex.split(line.split("Start it: ", 1)[1])
    assert "--resume" not in command and dynaboa.main(command[2:]) == 0


# --- case 7: the machine's own failures -----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_file_size_limit_is_one_line(world, tmp_path):
    """`ulimit -f` in a subprocess: the resume state (a ResNet-18 with its Adam moments) cannot be written."""
    args = shlex.join([sys.executable, str(REPO / "dynaboa.py"), *argv(world, tmp_path, "f", "--max-frames", "4",
                                                                        "--chunk", "2")])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DYNABOA_RERUN", None)
    done = subprocess.run(["bash", "-c", f"ulimit -f 20000; exec {args}"], env=env, capture_output=True, text=True,
                          timeout=600)
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("dynaboa.py")]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1 and "file-size limit (ulimit -f)" in lines[0] and "state.pt" in lines[0]
    assert lines[0].rstrip().endswith("--resume") and "enforce fail" not in lines[0]
    assert not [p for p in (tmp_path / "f").rglob("*") if ".tmp" in p.name]


def test_operating_system_errors_are_one_line(world, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert dynaboa.main(argv(world, tmp_path / "file", "x", "--max-frames", "1")) == 1
    [line] = error_lines(capsys)
    assert "Not a directory" in line and str(tmp_path / "file" / "x") in line and "check the path" in line


@pytest.mark.slow
def test_unreachable_scheduler_is_one_line(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")
    assert dynaboa.main(argv(world, tmp_path, "u", "--max-frames", "2", "--reset-per-sequence", "--backend", "dask",
                             "--scheduler", "tcp://127.0.0.1:9")) == 1
    [line] = error_lines(capsys)
    assert "tcp://127.0.0.1:9" in line and "check the address and that the service is running" in line


# --- case 8: reasons that name what is wrong --------------------------------------------------------------------------


def test_random_bytes_are_damaged_not_dangerous(tmp_path, world, capsys):
    rng = np.random.default_rng(0)
    for i in range(30):
        (tmp_path / "r.pt").write_bytes(rng.bytes(2000) if i % 2 else b"\x80\x02" + rng.bytes(2000))
        with pytest.raises(ValueError) as info:
            torch_load_tensors(tmp_path / "r.pt", "resume state")
        assert not isinstance(info.value, UnsafePickleError) and "run code" not in str(info.value)
        assert "not a readable resume state" in str(info.value)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UnsafePickleError, match="could run code"):
        torch_load_tensors(tmp_path / "evil.pt", "checkpoint")
    assert dynaboa.main(argv(world, tmp_path, "z", "--max-frames", "1", "--keep-state")) == 0
    (tmp_path / "z" / "state.pt").write_bytes(rng.bytes(5000))
    capsys.readouterr()
    assert dynaboa.main(argv(world, tmp_path, "z", "--max-frames", "2", "--resume")) == 1
    [line] = error_lines(capsys)
    assert "not a readable resume state" in line and "run code" not in line


def test_unreadable_frame_is_not_called_damaged(tmp_path, monkeypatch):
    from utils.imutils import read_image_rgb

    cv2.imwrite(str(tmp_path / "000001.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "000001.png").chmod(0)
    if os.access(tmp_path / "000001.png", os.R_OK):  # root reads anything: the refusal the OS would give, faked
        monkeypatch.setattr(cv2, "imread", lambda *args: None)
        monkeypatch.setattr(Path, "open", lambda self, *a: (_ for _ in ()).throw(PermissionError(
            13, "Permission denied", str(self))))
    with pytest.raises(ValueError, match="cannot read .*000001.png: Permission denied") as info:
        read_image_rgb(tmp_path / "000001.png")
    assert "damaged" not in str(info.value) and "corrupt" not in str(info.value)
    monkeypatch.undo()
    (tmp_path / "000002.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="damaged file or unsupported format"):
        read_image_rgb(tmp_path / "000002.png")


def test_real_photo_helper_skips_naming_the_missing_file():
    from tests.fixtures_real import real_photo

    with pytest.raises(pytest.skip.Exception, match="no_such_photo.jpg not found"):
        real_photo("no_such_photo.jpg")


# --- case 3: the printed fix for a damaged track file ----------------------------------------------------------------


def test_damaged_track_file_fix_works_as_printed(tmp_path):
    import process_data
    from datasets.internet import InternetStream
    from tests.fixtures_real import coco17_person
    from utils.keypoints import FrameKeypoints, KeypointsFile, PersonKeypoints, write_keypoints_json

    (tmp_path / "images" / "clip").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "images" / "clip" / f"{i + 1:06d}.png"), np.zeros((480, 320, 3), np.uint8))
    person = [PersonKeypoints(coco17_person(160, 240, 400), None)]
    write_keypoints_json(tmp_path / "clip.json", KeypointsFile("coco17", 10.0, [
        FrameKeypoints(f"{i + 1:06d}.png", person) for i in range(2)]))
    assert process_data.main(["--dataset", "internet", "--root", str(tmp_path)]) == 0
    (tmp_path / "clip_0.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RunError) as info:
        InternetStream(tmp_path, 64)
    fix = str(info.value).split("if not the default): ", 1)[1]
    done = subprocess.run(["bash", "-c", fix], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(InternetStream(tmp_path, 64)) == 2


# --- case 2: any video name in EasyMocap's camera files ---------------------------------------------------------------


@pytest.mark.parametrize("video", ["clip(1)", "my clip (1)", "été", "clip.v2", "a+b", "a\nb", "😀", "-x", "100%"])
def test_camera_files_take_any_video_name(tmp_path, video):
    from datasets.export import _write_camera_yml, camera_key

    _write_camera_yml(tmp_path, video, np.eye(3))
    for name, key in (("intri.yml", "K_"), ("extri.yml", "Rot_")):
        fs = cv2.FileStorage(str(tmp_path / name), cv2.FILE_STORAGE_READ)
        camera = fs.getNode("names").at(0).string()
        assert camera == camera_key(video) and fs.getNode(key + camera).mat().shape == (3, 3)


# --- cases 1, 5, 6, 8: the experiment folder's claim ------------------------------------------------------------------


def held(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder / experiment.LOCK, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def test_a_second_launch_is_refused_while_the_first_holds_the_lock(tmp_path):
    first, second = held(tmp_path / "e"), held(tmp_path / "e")
    lock(first, tmp_path / "e")
    with pytest.raises(ExperimentBusy, match="in use by another run_on_internet.sh"):
        lock(second, tmp_path / "e")
    os.close(first)
    lock(second, tmp_path / "e")  # free again once the first launch has ended
    fcntl.flock(second, fcntl.LOCK_UN)
    os.close(second)


def test_claim_owns_only_what_it_lists(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "my_video.mp4").write_bytes(b"video")
    options = {"every": 1, "min_size": 250.0, "multi_person": False, "videos": ["/v.mp4"]}
    with pytest.raises(NoExperiment):
        claim(folder, "video", "resume", options)
    done = claim(folder, "video", "new", options)
    assert done.others == ["my_video.mp4"] and (folder / MANIFEST).is_file()
    (folder / "input").mkdir()
    (folder / "export").mkdir()
    with pytest.raises(ExperimentExists):
        claim(folder, "video", "new", options)
    with pytest.raises(RunError, match="--min-size 250.0 -> 100.0"):
        claim(folder, "video", "resume", {**options, "min_size": 100.0})
    with pytest.raises(RunError, match="holds a single-video experiment"):
        claim(folder, "batch", "overwrite", options)
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "owned": [*manifest["owned"], "..", "/etc", "a/b"]}))
    assert claim(folder, "video", "overwrite", options).removed == ["input", "export"]
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "my_video.mp4"]


def test_first_claim_refuses_names_it_did_not_write(tmp_path):
    folder = tmp_path / "mine"
    (folder / "config.json").parent.mkdir()
    (folder / "config.json").write_text("{}")
    for mode in ("new", "overwrite"):
        with pytest.raises(RunError, match="holds config.json, which this project did not write"):
            claim(folder, "video", mode, {})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


# --- the script's own options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, message", [
    (["--every", "0"], "--every: must be > 0"), (["--min-size", "-3"], "--min-size: must be > 0"),
    (["--jobs", "two"], "--jobs: expected a whole number"), (["--backend", "ssh"], "invalid choice"),
    (["--scheduler", "tcp://h:1"], "add --backend dask"), (["--expname", "a/b"], "--expname must be a plain name"),
    (["--resume", "--overwrite"], "not both"), (["--", "--expname", "x"], "the script sets these itself"),
    (["--", "--data_root=/d"], "the script sets these itself"), (["--batch", "nowhere"], "nowhere not found"),
    (["--expnam", "x"], "unrecognized arguments")])
def test_script_options_are_checked_before_any_work(tmp_path, capsys, bad, message):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    args = bad if "--batch" in bad else [str(clip), *bad]
    with pytest.raises(SystemExit) as info:
        own_video.parse_script_args(args)
    assert info.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]


def test_plan_keeps_any_file_name_and_gives_a_batch_its_own_default(tmp_path):
    odd = tmp_path / "a 'b'\n$(c) é.mp4"
    odd.write_bytes(b"")
    plan = own_video.to_shell(own_video.plan("run_on_internet.sh", [str(odd), "--", "--lr", "1e-5", "--resume"]))
    shown = subprocess.run(["bash", "-c", f'{plan}\nprintf "%s|" "$NAME" "$MODE" "${{VIDEOS[@]}}" "${{NAMES[@]}}" '
                            '"${EXTRA[@]}"'], capture_output=True, text=True, check=True).stdout
    assert shown == f"internet|resume|{odd}|{odd.stem}|--lr|1e-5|"
    batch = own_video.plan("run_on_internet.sh", ["--batch", str(tmp_path)])
    assert batch["NAME"] == "batch" and batch["KIND"] == "batch"
