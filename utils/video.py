"""Reading videos with OpenCV: frame iteration, metadata and extraction to numbered images.

Shared by `vid2img.py`, the Human3.6M preprocessing and the webcam / internet-video programs. Frames are numbered as
the original's ffmpeg call did (`%06d.png`, the first frame is `000001`), and a frame keeps its source number when
only every N-th frame is written, so an image name always tells which video frame it is.

A file OpenCV cannot open raises `VideoError`. A damaged file (e.g. cut short by an interrupted copy) is read up to
the damage: the frames decoded so far are kept and a warning gives the expected and the decoded counts.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

FRAME_PATTERN = "{:06d}"  # frame number (from 1) -> file stem, as the original's ffmpeg `%06d`
META_NAME = "meta.json"  # written next to the extracted frames


class VideoError(RuntimeError):
    """A video file exists but OpenCV cannot open or decode it."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says about a video.

    Attributes:
        fps: frames per second (0.0 when the header has none).
        frame_count: number of frames the header announces (may be wrong for damaged or variable-rate files).
        width: frame width in pixels.
        height: frame height in pixels.
    """

    fps: float
    frame_count: int
    width: int
    height: int


@dataclass(frozen=True)
class ExtractResult:
    """Outcome of `extract_frames`.

    Attributes:
        out_dir: folder holding the frames and `meta.json`.
        frames_read: selected frames decoded from the video (written or already present).
        frames_written: images written by this call.
        frames_skipped: images already present and left alone.
        expected: selected frames the header's frame count promises (all frames when `every` is 1).
        complete: False when decoding stopped before `expected` frames (a damaged or truncated file).
    """

    out_dir: Path
    frames_read: int
    frames_written: int
    frames_skipped: int
    expected: int
    complete: bool


def _open(path: Path) -> cv2.VideoCapture:
    """Open `path` with the FFmpeg backend (any backend as a fallback); raise a helpful error when impossible."""
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} not found (give the path of an existing video file)")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(
            f"{path} is not a readable video: OpenCV cannot open it (not a video, an unsupported codec, or a file "
            "damaged where its index lives, e.g. an .mp4 cut short before its 'moov' atom). Re-encode it with "
            "`ffmpeg -i IN -c:v libx264 OUT.mp4` or copy it again."
        )
    return cap


def _info_from_capture(cap: cv2.VideoCapture) -> VideoInfo:
    return VideoInfo(
        fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
        frame_count=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )


def video_info(path: Path | str) -> VideoInfo:
    """Header information of a video (nothing is decoded).

    Raises:
        FileNotFoundError: `path` does not exist.
        VideoError: OpenCV cannot open it.
    """
    cap = _open(Path(path))
    try:
        return _info_from_capture(cap)
    finally:
        cap.release()


def iter_video_frames(path: Path | str, every: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video frame by frame.

    Args:
        path: video file.
        every: yield only frames whose 0-based index is a multiple of `every` (the others are grabbed, not
            converted).

    Yields:
        (index, frame): the 0-based frame index and the frame as a BGR uint8 array [H, W, 3].

    Decoding stops quietly at the end of the stream or at the first frame that cannot be decoded; compare the
    number of frames seen with `video_info(path).frame_count` to detect damage (as `extract_frames` does).
    """
    assert every >= 1, f"every must be >= 1, got {every}"
    cap = _open(Path(path))
    try:
        index = 0
        while True:
            if index % every == 0:
                ok, frame = cap.read()
                if not ok or frame is None:
                    return
                yield index, frame
            elif not cap.grab():
                return
            index += 1
    finally:
        cap.release()


def video_names(videos: Sequence[Path | str]) -> list[str]:
    """One folder name per video, in order: the file's stem, then `-2`, `-3`, ... when an earlier video took it."""
    names: list[str] = []
    for video in videos:
        stem = Path(video).stem
        name, k = stem, 1
        while name in names:
            k += 1
            name = f"{stem}-{k}"
        names.append(name)
    return names


def frame_name(index: int, ext: str = "png") -> str:
    """File name of 0-based frame `index`: `frame_name(0) == '000001.png'`."""
    return FRAME_PATTERN.format(index + 1) + "." + ext


def extract_frames(
    path: Path | str, out_dir: Path | str, every: int = 1, ext: str = "png", overwrite: bool = False
) -> ExtractResult:
    """Write the frames of a video as numbered images plus `meta.json` (fps, counts, size).

    Args:
        path: video file.
        out_dir: destination folder (created).
        every: write every `every`-th frame; names keep the source frame number (`000001`, `000006`, ... for 5).
        ext: image extension (`png` as the original, or `jpg`).
        overwrite: rewrite images that already exist (default: keep them, so an interrupted run resumes).

    Returns:
        An `ExtractResult`; `complete` is False (and a warning is logged) when the video ended before the frame
        count its header announces.
    """
    path, out_dir = Path(path), Path(out_dir)
    info = video_info(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    read = written = skipped = 0
    for index, frame in iter_video_frames(path, every):
        read += 1
        target = out_dir / frame_name(index, ext)
        if target.exists() and not overwrite:
            skipped += 1
            continue
        if not cv2.imwrite(str(target), frame):
            raise OSError(f"could not write frame image {target}")
        written += 1
    expected = -(-info.frame_count // every)  # frames of the announced length that `every` selects
    complete = read >= expected
    if not complete:
        logger.warning(
            "%s: the header announces %d frames (%d selected with every=%d) but only %d could be decoded "
            "(damaged or truncated file); the frames before the damage are kept",
            path, info.frame_count, expected, every, read,
        )
    meta = {**asdict(info), "frames_read": read, "every": every, "ext": ext, "source": str(path), "source_abs": str(path.resolve()),
            "complete": complete, "first_frame": frame_name(0, ext)}
    (out_dir / META_NAME).write_text(json.dumps(meta, indent=2))
    return ExtractResult(out_dir, read, written, skipped, expected, complete)


def read_meta(frame_dir: Path | str) -> dict:
    """The `meta.json` that `extract_frames` wrote into `frame_dir` (fps, frame_count, width, height, ...)."""
    meta_path = Path(frame_dir) / META_NAME
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"frame metadata {meta_path} not found: extract the video with `python vid2img.py VIDEO --out DIR`"
        )
    return json.loads(meta_path.read_text())
