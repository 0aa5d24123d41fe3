"""run_on_internet.sh as a new user meets it: nothing a user owns is ever deleted, any file name works
end to end, Ctrl-C in any stage ends in one line whose command works as printed, every option is checked before any
work, two launches into one folder cannot both run, and a batch does not collide with a single-video experiment.

The script runs on the tiny synthetic world (a random ResNet-18 at 64 px) with noise clips: the detector finds no
person, so a first run stops after detection ("no person found"); a test then writes the detector's output by hand
(a person) and continues with --resume, as tests/test_internet_safety.py does.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.fixtures_real import coco17_person
from tests.test_internet_safety import snapshot, write_noise_video
from utils.keypoints import FrameKeypoints, KeypointsFile, PersonKeypoints, write_keypoints_json

REPO = Path(__file__).resolve().parents[1]
SCRIPT = str(REPO / "run_on_internet.sh")
DEVICE = ["--device", "cpu", "--workers", "0", "--threads", "1"]


@pytest.fixture
def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("DYNABOA_DATA", "INTERNET_ROOT", "DYNABOA_RERUN")}
    out.update(PYTHON=sys.executable, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    return out


def script(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", SCRIPT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def shell(command: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """A printed command, run exactly as printed."""
    return subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def printed(stderr: str, label: str, end: str | None = None) -> str:
    """The command printed after `label` (up to `end`) on the one line of stderr that has it."""
    [line] = [ln for ln in stderr.splitlines() if label in ln]
    text = line.split(label, 1)[1]
    return (text.split(end)[0] if end else text).strip()


def seed_person(run: Path, name: str, frames: int) -> None:
    """The detector's output for video `name`: one person in every frame (written by hand in its place)."""
    person = [PersonKeypoints(coco17_person(160, 240, 400), None)]
    write_keypoints_json(run / "input" / f"{name}.json",
                         KeypointsFile("coco17", 10.0, [FrameKeypoints(f"{i + 1:06d}.png", person)
                                                        for i in range(frames)]))


def interrupt_when(args: list[str], env: dict, cwd: Path, ready, delay: float = 0.0) -> subprocess.CompletedProcess:
    """Start the script, send Ctrl-C (SIGINT to its process group, as a terminal does) once `ready()` holds."""
    proc = subprocess.Popen(["bash", SCRIPT, *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    start = time.monotonic()
    while not ready() and proc.poll() is None and time.monotonic() - start < 600:
        time.sleep(0.1)
    time.sleep(delay)
    assert proc.poll() is None, "the stage ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_overwrite_removes_only_what_the_project_wrote(world, env, tmp_path):
    """Case 1: a folder holding the user's video and notes is not "an experiment"; the printed --overwrite removes
    only the project's entries (its manifest), and a changed --min-size on --resume is refused (case 5)."""
    mine = tmp_path / "exps" / "mine"
    mine.mkdir(parents=True)
    write_noise_video(mine / "my_video.avi")
    (mine / "notes.txt").write_text("notes\n")
    args = ["exps/mine/my_video.avi", "--out", "exps", "--expname", "mine", "--data-root", str(world), "--no-video",
            "--", *DEVICE]
    first = script(args, env, tmp_path)
    assert first.returncode == 1 and "no person found" in first.stderr and "Traceback" not in first.stderr
    assert "also holds my_video.avi, notes.txt, which are not the project's" in first.stderr
    user_files = {"my_video.avi": (mine / "my_video.avi").read_bytes(), "notes.txt": b"notes\n"}
    before = snapshot(mine)
    again = script(args, env, tmp_path)
    lines = again.stderr.strip().splitlines()
    assert again.returncode == 1 and len(lines) == 1 and "already holds an experiment" in lines[0]
    assert snapshot(mine) == before
    changed = script(["--resume", *args[:-len(DEVICE) - 1], "--min-size", "100", "--", *DEVICE], env, tmp_path)
    assert changed.returncode == 1 and "--min-size 250.0 -> 100.0" in changed.stderr and snapshot(mine) == before
    overwrite = shell(printed(lines[0], "or replace it: "), env, tmp_path)  # as printed
    assert overwrite.returncode == 1 and "no person found" in overwrite.stderr, overwrite.stderr[-2000:]
    assert "--overwrite: removed input from" in overwrite.stderr
    assert {name: (mine / name).read_bytes() for name in user_files} == user_files


@pytest.mark.slow
def test_folder_with_the_projects_names_is_refused_untouched(world, env, tmp_path):
    """A folder that holds `input/` or `config.json` it did not write is never written into (nor later deleted)."""
    mine = tmp_path / "exps" / "mine"
    (mine / "input").mkdir(parents=True)
    (mine / "input" / "my_video.avi").write_bytes(b"the user's")
    clip = write_noise_video(tmp_path / "clip.avi")
    before = snapshot(mine)
    done = script(["--overwrite", str(clip), "--out", "exps", "--expname", "mine", "--data-root", str(world)], env,
                  tmp_path)
    assert done.returncode == 1 and "holds input, which this project did not write" in done.stderr
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["input"]


@pytest.mark.slow
def test_any_file_name_works_end_to_end_and_ctrl_c_continues_as_printed(world, env, tmp_path):
    """Case 2: a name with spaces, brackets, dots, accents and `+` goes through adaptation and every export; case 3:
    Ctrl-C during adaptation prints the script's own resume line, which finishes the run as printed."""
    name = "my clip (1).été+v2"
    clip = write_noise_video(tmp_path / f"{name}.avi", frames=16)
    args = [clip.name, "--out", "exps", "--expname", "e", "--data-root", str(world), "--", *DEVICE, "--chunk", "4"]
    run = tmp_path / "exps" / "e"
    assert script(args, env, tmp_path).returncode == 1
    seed_person(run, name, 16)

    def adapting() -> bool:
        rows = run / "frames.csv"
        return rows.is_file() and len(rows.read_text().splitlines()) > 3

    stopped = interrupt_when(["--resume", *args], env, tmp_path, adapting)
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    command = printed(stopped.stderr, "saved chunk with: ")
    assert shlex.split(command)[:3] == ["bash", SCRIPT, "--resume"]
    done = shell(command, env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = run / "export" / name
    assert (out / "overlay.mp4").is_file() and (out / "person_0.npz").is_file() and (out / "person_0.glb").is_file()
    intri = cv2.FileStorage(str(out / "easymocap" / "intri.yml"), cv2.FILE_STORAGE_READ)
    camera = intri.getNode("names").at(0).string()
    assert camera == "my_clip__1___t__v2" and intri.getNode(f"K_{camera}").mat().shape == (3, 3)
    assert len(np.load(run / "results.npz")["frame_id"]) == 16


@pytest.mark.slow
def test_ctrl_c_during_detection_is_one_line_that_works(world, env, tmp_path):
    """Case 3: Ctrl-C while the detector runs: no traceback, one line whose command continues the experiment."""
    clip = write_noise_video(tmp_path / "clip.avi", frames=12)
    args = [str(clip), "--out", "exps", "--expname", "d", "--data-root", str(world), "--no-video", "--", *DEVICE]
    meta = tmp_path / "exps" / "d" / "input" / "images" / "clip" / "meta.json"
    stopped = interrupt_when(args, env, tmp_path, meta.is_file, delay=1.0)
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    lines = [ln for ln in stopped.stderr.splitlines() if "interrupted" in ln]
    assert len(lines) == 1 and lines[0].startswith("run_on_internet.sh: interrupted")
    again = shell(printed(stopped.stderr, "Continue with: "), env, tmp_path)  # continues: detection, then no person
    assert again.returncode == 1 and "no person found" in again.stderr and "already holds" not in again.stderr
    # case 4: a learning rate that makes the model diverge stops with one line; nothing is written as a result
    seed_person(tmp_path / "exps" / "d", "clip", 12)
    diverged = script(["--resume", *args, "--lr", "1e3"], env, tmp_path)
    assert diverged.returncode == 1 and "Traceback" not in diverged.stderr
    assert len([ln for ln in diverged.stderr.splitlines() if "adaptation diverged at frame 0" in ln]) == 1
    assert not (tmp_path / "exps" / "d" / "results.npz").exists() and not (tmp_path / "exps" / "d" / "export").exists()


@pytest.mark.slow
def test_two_launches_into_one_folder_one_is_refused(world, env, tmp_path):
    """Case 6: launched together into one --expname, one runs and the other is refused cleanly (the lock)."""
    clips = [write_noise_video(tmp_path / f"{n}.avi", seed=i) for i, n in enumerate(("a", "b"))]
    procs = [subprocess.Popen(["bash", SCRIPT, str(c), "--out", "exps", "--expname", "same", "--data-root",
                               str(world), "--no-video", "--", *DEVICE], env=env, cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in clips]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    refused = [e for e in errs if "in use by another run_on_internet.sh" in e or "already holds an experiment" in e]
    ran = [e for e in errs if "no person found" in e]
    assert len(refused) == 1 and len(ran) == 1, errs
    manifest = json.loads((tmp_path / "exps" / "same" / ".dynaboa_manifest.json").read_text())
    assert len(manifest["options"]["videos"]) == 1
    assert len(list((tmp_path / "exps" / "same" / "input" / "images").iterdir())) == 1


@pytest.mark.slow
def test_bad_options_are_refused_before_anything_is_written(world, env, tmp_path):
    """Case 8 and the target: dynaboa.py's options after `--` are checked before any work (the script's own in
    tests/test_run_health.py); a refused launch leaves no folder behind that would block the corrected one."""
    clip = write_noise_video(tmp_path / "clip.avi")
    done = script([str(clip), "--out", "exps", "--data-root", str(world), "--", "--lr", "-1"], env, tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "argument --lr: '-1' (must be >= 0)" in lines[0]
    assert not (tmp_path / "exps").exists()
    resume = script(["--resume", str(clip), "--out", "exps", "--data-root", str(world)], env, tmp_path)
    assert resume.returncode == 1 and "holds no experiment to continue" in resume.stderr
    assert not (tmp_path / "exps").exists()
    # case 7: an output root that cannot be made (here a file stands in its way) is one line naming it
    (tmp_path / "afile").write_text("")
    blocked = script([str(clip), "--out", "afile", "--data-root", str(world)], env, tmp_path)
    lines = blocked.stderr.strip().splitlines()
    assert blocked.returncode == 1 and len(lines) == 1 and "afile/internet" in lines[0] and "--out" in lines[0]


@pytest.mark.slow
def test_batch_after_single_video_does_not_collide(world, env, tmp_path):
    """Case 8: the README's single-video line then its --batch line: different default folders; a batch into a
    single-video experiment is refused with no command that would mix them."""
    clip = write_noise_video(tmp_path / "clip.avi")
    single = script([str(clip), "--data-root", str(world), "--no-video", "--", *DEVICE], env, tmp_path)
    assert single.returncode == 1 and (tmp_path / "exps" / "internet" / ".dynaboa_manifest.json").is_file()
    (tmp_path / "videos").mkdir()
    write_noise_video(tmp_path / "videos" / "v.avi", frames=12)
    mixed = script(["--batch", "videos", "--expname", "internet", "--data-root", str(world)], env, tmp_path)
    assert mixed.returncode == 1 and "holds a single-video experiment" in mixed.stderr
    assert "Continue" not in mixed.stderr
    # case 3: Ctrl-C of a batch is one line, and its command continues the batch as printed
    meta = tmp_path / "exps" / "batch" / "videos" / "v" / "input" / "images" / "v" / "meta.json"
    stopped = interrupt_when(["--batch", "videos", "--data-root", str(world), "--no-video", "--", *DEVICE], env,
                             tmp_path, meta.is_file, delay=1.0)
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    [line] = [ln for ln in stopped.stderr.splitlines() if ln.strip()][-1:]
    assert line.startswith("run_on_internet.sh: interrupted") and "--resume --batch videos" in line
    batch = shell(printed(line, "Continue with: "), env, tmp_path)
    assert "v | 0 | 0 |" in batch.stdout and "Traceback" not in batch.stderr
    assert batch.returncode == 1 and "no person found" in (tmp_path / "exps" / "batch" / "logs" / "v.log").read_text()
