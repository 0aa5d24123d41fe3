"""Video files that play in a browser: H.264 (yuv420p, index at the front) through PyAV's libx264, with OpenCV's
`mp4v` writer as the fallback where PyAV or its H.264 encoder is missing; `.avi` files are Motion-JPEG (OpenCV).

    with open_video(path, fps, (width, height)) as video:   # frames [H, W, 3] uint8, RGB (order="bgr" for OpenCV's)
        video.write(frame)
"""
from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

H264_SUFFIXES = (".mp4", ".mov", ".mkv")


def h264_available() -> bool:
    """True when PyAV is installed with an H.264 encoder (libx264)."""
    try:
        import av

        av.codec.Codec("libx264", "w")
    except Exception:  # ImportError, or av's UnknownCodecError
        return False
    return True


class _Writer:
    """The common part: frame checks and the context manager."""

    def __init__(self, path: Path, size: tuple[int, int], order: str) -> None:
        if order not in ("rgb", "bgr"):
            raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
        self.path, self.size, self.order, self.count = Path(path), tuple(size), order, 0

    def _checked(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame {frame.shape} {frame.dtype}, expected {self.size[::-1]} x 3 uint8")
        self.count += 1
        return np.ascontiguousarray(frame)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class H264Writer(_Writer):
    """H.264 in an MP4 through PyAV. Odd widths or heights (yuv420p needs even ones) gain one edge pixel."""

    codec = "h264"

    def __init__(self, path: Path, fps: float, size: tuple[int, int], order: str = "rgb", crf: int = 20) -> None:
        import av

        super().__init__(path, size, order)
        self.container = av.open(str(path), mode="w", options={"movflags": "faststart"})
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000))
        self.stream.width, self.stream.height = size[0] + size[0] % 2, size[1] + size[1] % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(crf)}

    def write(self, frame: np.ndarray) -> None:
        """Append one frame [H, W, 3] uint8 in the writer's channel order."""
        import av

        frame = self._checked(frame)
        pad = ((0, self.stream.height - frame.shape[0]), (0, self.stream.width - frame.shape[1]), (0, 0))
        if any(p[1] for p in pad):
            frame = np.pad(frame, pad, mode="edge")
        video_frame = av.VideoFrame.from_ndarray(frame, format=f"{self.order}24")
        self.container.mux(self.stream.encode(video_frame))

    def close(self) -> None:
        """Flush the encoder and write the index."""
        if self.container is not None:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            self.container = None


class OpenCVWriter(_Writer):
    """OpenCV's writer: Motion-JPEG for `.avi`, `mp4v` (MPEG-4 part 2; many browsers do not play it) otherwise."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], order: str = "rgb") -> None:
        super().__init__(path, size, order)
        self.codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*self.codec), fps, tuple(size))
        if not self.writer.isOpened():
            raise OSError(f"cannot write video {path} ({self.codec})")

    def write(self, frame: np.ndarray) -> None:
        """Append one frame [H, W, 3] uint8 in the writer's channel order."""
        frame = self._checked(frame)
        self.writer.write(frame if self.order == "bgr" else np.ascontiguousarray(frame[:, :, ::-1]))

    def close(self) -> None:
        """Finish the file."""
        self.writer.release()


def open_video(path: Path | str, fps: float, size: tuple[int, int], order: str = "rgb",
               codec: str = "auto") -> H264Writer | OpenCVWriter:
    """A writer of frames of `size` (width, height) at `fps`. codec "auto": H.264 for .mp4/.mov/.mkv when PyAV has
    libx264, else OpenCV (MJPG for .avi, mp4v otherwise); "h264" or "opencv" to choose."""
    path = Path(path)
    if codec not in ("auto", "h264", "opencv"):
        raise ValueError(f"codec must be auto, h264 or opencv, got {codec!r}")
    if fps <= 0:
        raise ValueError(f"{path}: frame rate must be positive, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if codec == "h264" or (codec == "auto" and path.suffix.lower() in H264_SUFFIXES and h264_available()):
        return H264Writer(path, fps, size, order)
    if codec == "auto" and path.suffix.lower() in H264_SUFFIXES:
        logger.warning("PyAV with libx264 not found: %s is written as mp4v (may not play in a browser)", path)
    return OpenCVWriter(path, fps, size, order)
