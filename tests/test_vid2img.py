"""Video reading and `vid2img.py`: round trips, damaged files, clear errors, nothing at import."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import vid2img
from tests.fixtures_real import FPS, SIZE, frame_level, truncate_copy, write_video
from utils.video import VideoError, extract_frames, iter_video_frames, read_meta, video_info

REPO = Path(__file__).resolve().parents[1]
COUNT = 20


@pytest.mark.parametrize("fourcc, ext", [("MJPG", "avi"), ("mp4v", "mp4")])
def test_round_trip_count_fps_and_numbering(tmp_path: Path, fourcc: str, ext: str) -> None:
    video = write_video(tmp_path / f"clip.{ext}", COUNT, fourcc)
    info = video_info(video)
    assert (info.fps, info.frame_count, info.width, info.height) == (FPS, COUNT, *SIZE)
    assert vid2img.main([str(video), "--out", str(tmp_path / "frames")]) == 0
    out = tmp_path / "frames" / "clip"
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"{i:06d}.png" for i in range(1, COUNT + 1)]  # from 000001, as the original's ffmpeg
    assert [frame_level(cv2.imread(str(out / n))) for n in names] == list(range(COUNT))
    meta = read_meta(out)
    assert (meta["fps"], meta["frame_count"], meta["frames_read"]) == (FPS, COUNT, COUNT)
    assert (meta["width"], meta["height"], meta["complete"]) == (*SIZE, True)


def test_every_keeps_source_numbers_and_skips_existing(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 10)
    first = extract_frames(video, tmp_path / "f", every=4)
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == ["000001.png", "000005.png", "000009.png"]
    assert (first.frames_written, first.expected, first.complete) == (3, 3, True)  # ceil(10 / 4)
    again = extract_frames(video, tmp_path / "f", every=4)
    assert (again.frames_written, again.frames_skipped) == (0, 3)
    assert [i for i, _ in iter_video_frames(video, every=4)] == [0, 4, 8]


def test_truncated_avi_keeps_first_frames_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    whole = write_video(tmp_path / "whole.avi", COUNT)
    cut = truncate_copy(whole, tmp_path / "cut.avi")
    with caplog.at_level(logging.WARNING):
        result = extract_frames(cut, tmp_path / "cut")
    assert 0 < result.frames_read < COUNT and not result.complete
    assert f"announces {COUNT} frames" in caplog.text and f"only {result.frames_read} could be decoded" in caplog.text
    kept = sorted((tmp_path / "cut").glob("*.png"))
    assert [frame_level(cv2.imread(str(p))) for p in kept] == list(range(result.frames_read))
    assert json.loads((tmp_path / "cut" / "meta.json").read_text())["complete"] is False


def test_truncated_mp4_and_non_video_give_clear_errors(tmp_path: Path) -> None:
    # OpenCV's mp4v writer puts the index ('moov') at the end: half a file cannot be opened at all.
    cut = truncate_copy(write_video(tmp_path / "whole.mp4", COUNT, "mp4v"), tmp_path / "cut.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for bad in (cut, text):
        with pytest.raises(VideoError, match="not a readable video"):
            video_info(bad)
    with pytest.raises(FileNotFoundError, match="absent.mp4"):
        video_info(tmp_path / "absent.mp4")
    with pytest.raises(FileNotFoundError, match="vid2img.py"):
        read_meta(tmp_path)


def test_main_reports_unreadable_files_and_continues(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = write_video(tmp_path / "good.avi", 3)
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 100)
    with caplog.at_level(logging.ERROR):
        assert vid2img.main([str(bad), str(good), "--out", str(tmp_path / "o")]) == 1
    assert "bad.avi is not a readable video" in caplog.text
    assert len(list((tmp_path / "o" / "good").glob("*.png"))) == 3


def test_import_does_nothing(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.mp4", 3, "mp4v")
    env = {**os.environ, "INTERNET_ROOT": str(tmp_path), "DYNABOA_DATA": str(tmp_path)}
    subprocess.run([sys.executable, "-c", "import vid2img"], cwd=REPO, env=env, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
