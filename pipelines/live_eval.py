"""The live mode's accuracy: a synthetic stream with ground truth played at its frame rate through the asynchronous
path, against the budgeted schedule with the same number of updates.

    python -m pipelines.live_eval --data-root data/synthetic_val --max-frames 600 --preset finetune --lr-scale 3

The stream's items (crop, 2D keypoints, ground truth) are delivered at `--fps` as a camera delivers frames
(`pipelines.live.PacedVideo` behind a `LatestFrame`: an item the predictor does not take in time is dropped, not
shown). Each shown item is predicted at once with the newest published weights (`pipelines.async_adapt`), evaluated
(the 3DPW protocol of `dynaboa.py`) and queued for the adaptation thread. Then the same frames are run through the
budgeted schedule (`--adapt-every K`, K = stream frames / updates, rounded: about as many updates over the same
stream) and evaluated on the same shown frames.
No detector and no drawing: the live path's prediction is what is measured.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from config import AdaptConfig, DataPaths, build_parser, config_from_namespace, option
from models.adaptor import Frame
from pipelines.async_adapt import AsyncAdapter, LivePredictor, Staleness
from pipelines.live import LatestFrame, PacedVideo
from pipelines.session import RunConfig, adaptor_for_run, build_evaluator, build_stream, resolve_adapt
from utils.runtime import seed_everything

logger = logging.getLogger(__name__)


@dataclass
class LiveEvalConfig:
    """What is played and how fast."""

    fps: float = option("frame rate the stream is played at", default=30.0)
    queue: int = option("adaptation queue (frames)", default=2)
    out: Path = option("JSON file of the result", default=Path("exps/live_eval.json"))


def replay(run: RunConfig, adapt: AdaptConfig, live: LiveEvalConfig) -> dict:
    """Play the stream at `live.fps` through the asynchronous path; per shown frame its index and metrics."""
    paths, device = DataPaths.from_root(run.data_root), torch.device("cpu")
    seed_everything(run.seed)
    adaptor, img_res = adaptor_for_run(run, adapt, paths, device)
    stream, evaluator = build_stream(run, paths, img_res), build_evaluator(run, paths, device)
    end = len(stream) if run.max_frames <= 0 else min(len(stream), run.max_frames)
    predictor = LivePredictor(adaptor.model, adaptor.smpl)
    threads = max(run.threads, 1)  # torch threads of each of the two threads (--threads; default 1)
    adapter = AsyncAdapter(adaptor, live.queue, threads)
    predictor.board = adapter.board
    torch.set_num_threads(threads)
    latest = LatestFrame(PacedVideo((stream[i] for i in range(end)), live.fps))
    shown, staleness, start = [], Staleness(), time.perf_counter()
    try:
        while (item := latest.read(timeout=30.0)) is not None:
            predictor.refresh()
            _, vertices = predictor(item.image[None].to(device))
            staleness.observe(item.index, predictor.frame)
            shown.append({"index": item.index, **evaluator(vertices, item.gt)})
            adapter.submit(Frame(item.image[None], item.keypoints[None], item.track), item.index)
    finally:
        latest.close()
        adapter.close()
    seconds = time.perf_counter() - start
    return {"frames": end, "shown": shown, "updates": adapter.updates, "dropped_by_source": latest.dropped,
            "dropped_by_queue": adapter.dropped, "shown_fps": len(shown) / seconds,
            "updates_per_s": adapter.updates / seconds, "mean_staleness": staleness.mean}


def budgeted(run: RunConfig, adapt: AdaptConfig, every: int, indices: Sequence[int]) -> dict[str, float]:
    """The budgeted schedule (every `every`-th frame) over the same stream, evaluated on `indices`."""
    from datasets.results import RunWriter
    from pipelines.session import adapt_stream

    paths, device = DataPaths.from_root(run.data_root), torch.device("cpu")
    seed_everything(run.seed)
    adapt = dataclasses.replace(adapt, adapt_every=every)
    adaptor, img_res = adaptor_for_run(run, adapt, paths, device)
    stream, evaluator = build_stream(run, paths, img_res), build_evaluator(run, paths, device)
    exppath = run.expdir / f"{run.expname}_every{every}"
    shutil.rmtree(exppath, ignore_errors=True)  # this harness's own output of an earlier call
    writer = RunWriter(exppath, run.chunk, resume=False)
    adapt_stream(adaptor, stream, writer, evaluator, run, device)
    rows = {int(r["index"]): r for r in writer.rows_so_far()}
    writer.finish({})
    keep = [rows[i] for i in indices]
    return {k: statistics.mean(float(r[k]) for r in keep) for k in ("mpjpe", "pa_mpjpe", "pve")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__.splitlines()[0], [(LiveEvalConfig, "live"), (RunConfig, "run"),
                                                     (AdaptConfig, "adaptation")])
    ns = parser.parse_args(argv)
    live, run = config_from_namespace(LiveEvalConfig, ns), config_from_namespace(RunConfig, ns)
    run = dataclasses.replace(run, workers=0, expdir=live.out.parent, expname=live.out.stem, overwrite=True)
    adapt = resolve_adapt(run, config_from_namespace(AdaptConfig, ns, ns.config), explicit=vars(ns))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    played = replay(run, adapt, live)
    indices = [row["index"] for row in played["shown"]]
    every = max(1, round(played["frames"] / max(played["updates"], 1)))  # as many updates over the stream
    live_means = {k: statistics.mean(row[k] for row in played["shown"]) for k in ("mpjpe", "pa_mpjpe", "pve")}
    result = {**{k: v for k, v in played.items() if k != "shown"}, "shown_frames": len(indices), "live": live_means,
              "budget_every": every, "budgeted_on_shown_frames": budgeted(run, adapt, every, indices)}
    live.out.parent.mkdir(parents=True, exist_ok=True)
    live.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
