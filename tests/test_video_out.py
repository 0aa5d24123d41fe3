"""datasets.video_out: H.264 MP4 through PyAV, decoded back; OpenCV's mp4v where PyAV's H.264 is missing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasets import video_out
from datasets.video_out import open_video

av = pytest.importorskip("av")
pytestmark = pytest.mark.skipif(not video_out.h264_available(), reason="PyAV without libx264")


def _frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """Flat colours, red rising and blue falling, so that a swapped channel order shows."""
    return [np.dstack([np.full((height, width), v, np.uint8) for v in (40 + 30 * i, 128, 220 - 30 * i)])
            for i in range(count)]


def _decode(path) -> tuple[str, list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream.codec_context.name, frames, float(stream.average_rate)


@pytest.mark.parametrize("size", [(64, 48), (63, 47)])
def test_h264_file_decodes_back(tmp_path, size) -> None:
    path = tmp_path / "clip.mp4"
    frames = _frames(5, *size)
    with open_video(path, 25.0, size) as video:
        assert video.codec == "h264"
        for frame in frames:
            video.write(frame)
    codec, decoded, fps = _decode(path)
    even = (size[1] + size[1] % 2, size[0] + size[0] % 2)
    assert codec == "h264" and len(decoded) == 5 and fps == pytest.approx(25.0)
    assert all(f.shape == (*even, 3) for f in decoded)
    for got, want in zip(decoded, frames, strict=True):  # lossy, but flat colours come back within a few levels
        assert np.abs(got[:size[1], :size[0]].astype(int) - want).max() <= 6


def test_bgr_order_and_index_at_the_front(tmp_path) -> None:
    path = tmp_path / "clip.mp4"
    frame = _frames(1, 32, 32)[0]
    with open_video(path, 30.0, (32, 32), order="bgr") as video:
        video.write(np.ascontiguousarray(frame[:, :, ::-1]))
    _, decoded, _ = _decode(path)
    assert np.abs(decoded[0].astype(int) - frame).max() <= 6
    data = path.read_bytes()
    assert -1 < data.find(b"moov") < data.find(b"mdat")  # the index before the frames: plays while loading


def test_fallback_is_opencv_mp4v(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(video_out, "h264_available", lambda: False)
    path = tmp_path / "clip.mp4"
    with open_video(path, 25.0, (64, 48)) as video:
        assert video.codec == "mp4v"
        for frame in _frames(3, 64, 48):
            video.write(frame)
    codec, decoded, _ = _decode(path)
    assert codec == "mpeg4" and len(decoded) == 3 and decoded[0].shape == (48, 64, 3)
    cap = cv2.VideoCapture(str(path))  # and OpenCV reads it back
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


def test_bad_input_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="frame rate"):
        open_video(tmp_path / "a.mp4", 0, (8, 8))
    with open_video(tmp_path / "b.mp4", 10.0, (8, 8)) as video, pytest.raises(ValueError, match="expected"):
        video.write(np.zeros((9, 8, 3), np.uint8))
