"""Several passes over a recorded video (`dynaboa.py --passes N`, `run_on_internet.sh -- --passes N`), and the
adaptor's frame of a stream item.

A recorded clip can be read more than once: the first N - 1 passes adapt on every frame of the clip in order (as
the one-pass run would, budget included) and keep nothing; the last pass adapts again and is the run the session
writes (frames.csv, results.npz, metrics.json: one set of results). Weights, optimiser moments, the teacher and the
per-track statistics carry over from pass to pass; the motion history is cleared between passes (the clip's end is
not the frame before its start). A live stream has no second pass (`pipelines/live.py` keeps one). A run of several
passes is not resumable: `--resume` is refused with `--passes` > 1 (dynaboa.py), since the saved state of the last
pass would not say which passes came before.
"""
from __future__ import annotations

import logging

import torch

from datasets.base import StreamItem, collate_single
from models.adaptor import Adaptor, Frame
from pipelines.budget import Budget

logger = logging.getLogger("dynaboa")


def frame_of(item: StreamItem, device: torch.device) -> Frame:
    """The adaptor's batch-of-one frame of a stream item (its world landmarks when the stream carries them)."""
    landmarks = None if item.landmarks is None else torch.as_tensor(item.landmarks, dtype=torch.float32)[None]
    return Frame(item.image[None].to(device), item.keypoints[None].to(device), item.track,
                 None if landmarks is None else landmarks.to(device))


def new_pass(adaptor: Adaptor) -> None:
    """Between passes: the motion history is cleared and the next frame starts a track (weights, optimiser,
    teacher and track statistics are kept)."""
    adaptor.history.clear()
    adaptor.track_id = None


def stream_end(stream: torch.utils.data.Dataset, max_frames: int) -> int:
    """The end index of a run over `stream` (all items, or the first `max_frames`)."""
    return len(stream) if max_frames <= 0 else min(len(stream), max_frames)


def adapt_passes(adaptor: Adaptor, stream: torch.utils.data.Dataset, passes: int, device: torch.device,
                 first: int = 0, end: int | None = None, workers: int = 0) -> int:
    """The first `passes` - 1 passes over items [first, end): adapt on each frame, keep nothing; the caller's frame
    loop is the last pass. Returns the number of frames stepped."""
    from tqdm import tqdm

    end = len(stream) if end is None else end
    stepped = 0
    for number in range(1, passes):
        subset = torch.utils.data.Subset(stream, range(first, end))
        loader = torch.utils.data.DataLoader(subset, batch_size=1, collate_fn=collate_single, num_workers=workers)
        budget = Budget.from_config(adaptor.cfg, None)
        new_pass(adaptor)
        for item in tqdm(loader, total=len(subset), desc=f"pass {number}/{passes}", dynamic_ncols=True):
            adaptor.step(frame_of(item, device), adapt=budget.wants(item.index))
            stepped += 1
        logger.info("pass %d of %d: adapted over %d frames", number, passes, len(subset))
    if passes > 1:
        new_pass(adaptor)
    return stepped
