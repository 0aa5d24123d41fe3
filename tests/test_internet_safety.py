"""The internet-video path never destroys its inputs and says what is wrong in one line: a rerun into an
existing experiment is refused with commands that work as printed, the built-in assets run a fresh clone with a
warning and provenance, colliding video stems, no person, bad keypoint / track files, an unreadable frame."""
from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import process_data
import vid2img
from datasets.internet import InternetStream
from datasets.runrecord import RunError
from tests.fixtures_real import coco17_person
from utils.keypoints import FrameKeypoints, KeypointsFile, PersonKeypoints, write_keypoints_json

REPO = Path(__file__).resolve().parents[1]
FRAMES, SIZE = 3, (320, 480)  # width, height


def write_noise_video(path: Path, seed: int = 0, frames: int = FRAMES) -> Path:
    """A short clip of random noise: no person in it."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8))
    writer.release()
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def script(cmd: list[str] | str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    args = ["bash", "-c", cmd] if isinstance(cmd, str) else ["bash", str(REPO / "run_on_internet.sh"), *cmd]
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_rerun_refused_resume_as_printed_on_builtin_assets(tmp_path: Path) -> None:
    clip = write_noise_video(tmp_path / "clip.avi")
    env = {k: v for k, v in os.environ.items() if k not in ("DYNABOA_DATA", "INTERNET_ROOT")}
    env.update(PYTHON=sys.executable, DYNABOA_BUILTIN_ROOT=str(tmp_path / "builtin"), OMP_NUM_THREADS="1")
    args = [str(clip), "--out", "exps", "--expname", "t", "--no-video", "--", "--device", "cpu", "--workers", "0"]
    first = script(args, env, tmp_path)
    assert first.returncode != 0 and "no person found in clip" in first.stderr and "Traceback" not in first.stderr
    builtin = (REPO / "data" / "basemodel.pt").exists() is False  # a checkout without licensed files
    if builtin:
        assert first.stderr.count("synthetic-only demonstration") == 1
    # a detector that found a person (hand-written keypoints in the detector's place), then the same command again
    run = tmp_path / "exps" / "t"
    person = [PersonKeypoints(coco17_person(160, 240, 400), None)]
    write_keypoints_json(run / "input" / "clip.json",
                         KeypointsFile("coco17", 10.0, [FrameKeypoints(f"{i + 1:06d}.png", person) for i in range(3)]))
    before = snapshot(run)
    again = script(args, env, tmp_path)
    lines = again.stderr.strip().splitlines()
    assert again.returncode == 1 and len(lines) == 1 and "already holds an experiment" in lines[0]
    assert snapshot(run) == before  # nothing redone, nothing deleted
    resume = lines[0].split("Continue it: ", 1)[1].split("  or replace it: ")[0]
    assert "--resume" in shlex.split(resume)
    done = script(resume, env, tmp_path)  # the command works as printed
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run / "config.json").read_text())
    prov = json.loads((run / "export" / "clip" / "provenance.json").read_text())
    assert prov["base_model_sha256"] == record["provenance"]["base_model_sha256"] and prov["git_commit"] is not None
    assert prov["body_model_kind"].startswith("procedural") and prov["synthetic_only"] is builtin
    exported = np.load(run / "export" / "clip" / "person_0.npz")
    assert str(exported["joints2d_source"]) == "detected" and json.loads(str(exported["provenance"]))["body_model"]
    # rerunning after it finished is refused too, and the track file stays; re-exporting still uses the detections
    tracks = (run / "input" / "clip_0.npz").read_bytes()
    assert script(args, env, tmp_path).returncode == 1 and (run / "input" / "clip_0.npz").read_bytes() == tracks
    export = subprocess.run([sys.executable, "-m", "datasets.export", str(run), "--internet-root", str(run / "input"),
                             "--no-video"], env={**env, "DYNABOA_DATA": str(tmp_path / "builtin")} if builtin else env,
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert export.returncode == 0, export.stderr[-2000:]
    assert str(np.load(run / "export" / "clip" / "person_0.npz")["joints2d_source"]) == "detected"


def test_videos_with_the_same_stem_get_their_own_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_noise_video(tmp_path / "a" / "clip.avi", seed=1, frames=2)
    second = write_noise_video(tmp_path / "b" / "clip.avi", seed=2, frames=3)
    out = tmp_path / "frames"
    assert vid2img.main([str(first), str(second), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip", "clip-2"]
    assert len(list((out / "clip").glob("*.png"))) == 2 and len(list((out / "clip-2").glob("*.png"))) == 3
    # another video whose stem names a folder of other frames is refused, the folder untouched
    before = snapshot(out)
    assert vid2img.main([str(second), "--out", str(out)]) == 1
    assert snapshot(out) == before


def test_keypoint_json_missing_keys_name_file_and_frame(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    person = [PersonKeypoints(coco17_person(160, 240, 400), None)]
    write_keypoints_json(tmp_path / "v.json", KeypointsFile("coco17", 10.0, [FrameKeypoints("000001.png", person),
                                                                                FrameKeypoints("000002.png", person)]))
    doc = json.loads((tmp_path / "v.json").read_text())
    del doc["frames"][1]["people"][0]["keypoints"]
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with caplog.at_level(logging.ERROR):
        assert process_data.main(["--dataset", "internet", "--root", str(tmp_path)]) == 1
    [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert str(tmp_path / "v.json") in message and "frame 1 (000002.png)" in message and "keypoints" in message
    del doc["layout"]
    (tmp_path / "v.json").write_text(json.dumps(doc))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert process_data.main(["--dataset", "internet", "--root", str(tmp_path)]) == 1
    assert "'layout' is missing" in caplog.text and "v.json" in caplog.text


def test_corrupt_track_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "clip_0.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RunError, match=r"clip_0\.npz is not a readable track file"):
        InternetStream(tmp_path, 64)


@pytest.mark.slow
def test_unreadable_frame_is_skipped_by_detection(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from datasets.detector import detect_frame_dir

    rng = np.random.default_rng(0)
    for i in (1, 3):
        cv2.imwrite(str(tmp_path / f"{i:06d}.png"), rng.integers(0, 255, (96, 64, 3), dtype=np.uint8))
    (tmp_path / "000002.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING):
        data = detect_frame_dir(tmp_path)
    assert [f.image for f in data.frames] == ["000001.png", "000003.png"]
    assert "000002.png: skipped" in caplog.text


@pytest.mark.slow
def test_webcam_program_runs_on_builtin_assets_with_provenance(tmp_path: Path) -> None:
    if (REPO / "data" / "basemodel.pt").exists():
        pytest.skip("licensed files in data/: the built-in assets are not used")
    clip = write_noise_video(tmp_path / "clip.avi", frames=2)
    env = {k: v for k, v in os.environ.items() if k != "DYNABOA_DATA"}
    env.update(DYNABOA_BUILTIN_ROOT=str(tmp_path / "builtin"), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(REPO / "dynaboa_webcam.py"), "--capture-mode", "video", "--video",
                           str(clip), "--no-display", "--save-video", str(tmp_path / "out.mp4"), "--device", "cpu"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("no licensed model files found") == 1
    prov = json.loads((tmp_path / "out.mp4.provenance.json").read_text())
    assert prov["synthetic_only"] is True and "too large and stiff" in prov["note"]
