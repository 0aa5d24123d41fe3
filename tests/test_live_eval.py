"""pipelines/live_eval.py: a stream with ground truth played at its frame rate through the asynchronous path, then
the budgeted schedule with the same number of updates on the same frames."""
from __future__ import annotations

import json

from pipelines import live_eval


def test_live_replay_against_the_budgeted_schedule(world, tmp_path) -> None:
    out = tmp_path / "live.json"
    assert live_eval.main(["--data-root", str(world), "--max-frames", "8", "--fps", "10", "--source-free",
                           "--preset", "finetune", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 8 and 1 <= result["shown_frames"] <= 8
    assert result["shown_frames"] + result["dropped_by_source"] == 8
    assert 1 <= result["updates"] <= result["shown_frames"] and result["budget_every"] >= 1
    assert result["live"]["pa_mpjpe"] > 0 and result["budgeted_on_shown_frames"]["pa_mpjpe"] > 0
    assert result["shown_fps"] > 0 and result["updates_per_s"] > 0 and result["mean_staleness"] >= 0
