"""dynaboa_webcam.py and pipelines/live.py: the original's flags, newest-frame capture, keys, re-timed saving, and a
headless run on a video file (frames without a person are shown without an update);
clear errors for a missing camera or video."""
from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
import pytest

import dynaboa_webcam as webcam
from pipelines import live
from tests.test_internet_pipeline import REAL, build_data_root, read_video, write_photo_clip


def test_original_spellings_and_webcam_defaults(tmp_path) -> None:
    cfg, adapt = webcam.parse_args(["--use_boa", "1", "--dynamic_boa", "1", "--save_video", "1", "--res_dir",
                                    str(tmp_path), "--capture_mode", "video", "--vid_path", "clip.mp4",
                                    "--model_file", "m.pt", "--test_basemodel", "1"])
    assert adapt.use_boa and adapt.dynamic_boa and cfg.test_basemodel and cfg.capture_mode == "video"
    assert str(cfg.video) == "clip.mp4" and str(cfg.model_file) == "m.pt"
    assert webcam.save_path(cfg) == tmp_path / "output.mp4"
    cfg, adapt = webcam.parse_args([])  # the original webcam script's defaults
    assert cfg.capture_mode == "webcam" and cfg.display and webcam.save_path(cfg) is None
    assert not (adapt.use_boa or adapt.dynamic_boa or adapt.retrieval or adapt.lower_level_mixtrain)
    assert adapt.keypoint_block == "openpose" and adapt.lr == 3e-6 and adapt.motionloss_weight == 0.8
    cfg, _ = webcam.parse_args(["--save-video", "out/x.mp4", "--no-display", "--no-use-boa"])
    assert webcam.save_path(cfg).name == "x.mp4" and not cfg.display
    with pytest.raises(SystemExit):
        webcam.parse_args(["--capture-mode", "video"])  # no file


def _has_gui() -> bool:
    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        return True
    except cv2.error:
        return False


class FastCamera:
    """A camera delivering numbered frames as fast as it is read; stops after `count`."""

    def __init__(self, count: int) -> None:
        self.count, self.index, self.released = count, 0, False

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.001)
        if self.index >= self.count:
            return False, None
        self.index += 1
        return True, np.full((2, 2), self.index, np.int32)

    def release(self) -> None:
        self.released = True


def test_latest_frame_drops_what_the_consumer_cannot_take() -> None:
    camera = FastCamera(300)
    latest = live.LatestFrame(camera)
    seen = []
    while (frame := latest.read(timeout=2.0)) is not None:
        seen.append(int(frame[0, 0]))
        time.sleep(0.01)  # a slow consumer
    latest.close()
    assert seen == sorted(set(seen)) and seen[-1] == 300  # newest first, never a frame twice, up to the last
    assert len(seen) < 300 and latest.dropped == 300 - len(seen) and camera.released


def test_keys() -> None:
    class Stub:
        resets = 0

        def reset(self) -> None:
            self.resets += 1

    stub = Stub()
    assert webcam.handle_key(ord("r"), stub) and stub.resets == 1
    assert not webcam.handle_key(ord("q"), stub) and webcam.handle_key(255, stub) and stub.resets == 1


def test_live_video_is_retimed_to_the_measured_rate(tmp_path) -> None:
    sink = live.VideoSink(tmp_path / "live.mp4", None)  # a live camera: rate unknown while recording
    for i in range(5):
        sink.write(np.full((32, 48, 3), 40 * i, np.uint8))
    sink.close(7.5)
    assert read_video(tmp_path / "live.mp4") == (5, pytest.approx(7.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.mp4"]  # the temporary file is gone


@pytest.fixture(scope="module")
def data_root(tiny_world, tmp_path_factory):
    return build_data_root(tmp_path_factory.mktemp("webcam") / "data", tiny_world)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real photographs not found at {REAL}")
def test_headless_run_on_a_video_file(data_root, tmp_path) -> None:
    clip = write_photo_clip(tmp_path / "clip.avi", "baseball_flickr.jpg", 5, 12.5, (160, 200), blank=(2,))
    argv = ["--capture_mode", "video", "--vid_path", str(clip), "--no-display", "--save-video",
            str(tmp_path / "out.mp4"), "--data-root", str(data_root), "--device", "cpu", "--test_basemodel", "1"]
    stats = webcam.run(*webcam.parse_args(argv))
    assert (stats.frames, stats.updated, stats.no_person) == (5, 4, 1)  # the black frame: shown, no update
    assert read_video(tmp_path / "out.mp4") == (5, pytest.approx(12.5))  # the source's frame rate
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 3 * 160  # keypoints | adapted mesh | base model


def test_clear_errors(data_root, tmp_path, caplog) -> None:
    common = ["--no-display", "--data-root", str(data_root), "--device", "cpu"]
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 100)
    with caplog.at_level(logging.ERROR):
        assert webcam.main(["--capture-mode", "video", "--video", str(tmp_path / "absent.mp4"), *common]) == 1
        assert "absent.mp4 not found" in caplog.text
        assert webcam.main(["--capture-mode", "video", "--video", str(tmp_path / "junk.mp4"), *common]) == 1
        assert "not a readable video" in caplog.text
        assert webcam.main(["--camera", "57", *common]) == 1
        assert "camera 57 cannot be opened" in caplog.text
        assert webcam.main(["--data-root", str(tmp_path), "--no-display"]) == 1  # no assets
        assert "basemodel.pt" in caplog.text
        if not _has_gui():
            assert webcam.main(["--capture-mode", "video", "--video", str(tmp_path / "junk.mp4"),
                                "--data-root", str(data_root)]) == 1
            assert "--no-display" in caplog.records[-1].getMessage()
    assert threading.active_count() < 10  # no capture thread left behind
