"""What every test-time stream shares: one item per cropped person frame, read lazily.

The original loads every frame of every track into memory at start-up (docs/method.md §11 item 16); here an item is
decoded and cropped when it is asked for, so a DataLoader with workers can prefetch while the adaptor works.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils.imutils import person_crop, read_image_rgb


@dataclass
class StreamItem:
    """One frame of one person track.

    Attributes:
        index: position in the stream.
        image: [3, R, R] normalised crop.
        keypoints: [49, 3] normalised keypoints with confidence (what drives adaptation).
        track: (source name, person id); a change starts a new track.
        imgname: image path relative to the dataset root.
        center: [2] box centre, pixels; scale: box side / 200.
        img_size: (W, H) of the full frame, pixels.
        frame_id: 0-based frame number in its video or sequence.
        gt: ground truth for evaluation (`pose` [72], `betas` [10], `gender` 'm'/'f'), empty when there is none.
        landmarks: [33, 4] the detector's world landmarks (metres + visibility), None when the stream has none.
    """

    index: int
    image: torch.Tensor
    keypoints: torch.Tensor
    track: tuple[str, int]
    imgname: str
    center: np.ndarray
    scale: float
    img_size: tuple[int, int]
    frame_id: int
    gt: dict
    landmarks: torch.Tensor | None = None


def crop_item(root: Path, imgname: str, center: np.ndarray, scale: float, keypoints: np.ndarray,
              img_res: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Read the frame, crop the person box and normalise the keypoints (docs/method.md §2.3).

    Args:
        root: dataset root that `imgname` is relative to.
        keypoints: [49, 3] pixels + confidence; NaN joints become confidence 0.
    Returns:
        image [3, R, R], keypoints [49, 3] (normalised, a new array), (W, H) of the frame.
    """
    image = read_image_rgb(root / imgname)
    crop, kp = person_crop(image, center, scale, keypoints, img_res)
    return crop, torch.from_numpy(kp), (int(image.shape[1]), int(image.shape[0]))


def collate_single(items: list[StreamItem]) -> StreamItem:
    """DataLoader collate for batch size 1 (the stream is adapted one frame at a time)."""
    assert len(items) == 1
    return items[0]


def stream_tracks(stream: torch.utils.data.Dataset) -> list[tuple[str, int]]:
    """(sequence, person id) of every item, read without decoding any image."""
    return list(stream.tracks)


def sequence_ranges(tracks: Sequence[tuple[str, int]], end: int) -> list[tuple[str, int, int]]:
    """(sequence name, first index, end index) of the contiguous runs of one sequence among the first `end` items."""
    ranges: list[tuple[str, int, int]] = []
    for index, (name, _) in enumerate(tracks[:end]):
        if ranges and ranges[-1][0] == name:
            ranges[-1] = (name, ranges[-1][1], index + 1)
        else:
            ranges.append((name, index, index + 1))
    names = [name for name, _, _ in ranges]
    if len(set(names)) != len(names):
        raise ValueError(f"a sequence appears in more than one stretch of the stream: {names}")
    return ranges
