"""Budgeted adaptation: every frame is predicted, only some are adapted on.

Two rules, both from `config.AdaptConfig`, applied by the frame loop (`pipelines.session.adapt_stream`) and by the
synchronous live path (`pipelines.live.Session`); a frame they skip goes through `Adaptor.step(frame, adapt=False)`,
the no-grad forward of `--no-adapt` (its motion history and track statistics are kept as for any frame), and is
written with `updated` 0:

- `adapt_every` K: adapt on the frames whose stream index is a multiple of K (the first frame, the (K+1)-th, ...).
  The rule depends on the index alone, so a resumed run, and a sequence of `--jobs`, take the same decisions as an
  uninterrupted serial run; K = 1 is the unbudgeted run, bit for bit.
- `frame_budget` S seconds: a token bucket. Every frame earns S seconds of credit and spends what its step took
  (prediction included); a frame the K rule allows is adapted when the credit is not negative. The credit is capped
  at S, so a stretch of cheap frames buys at most one extra update. The decisions follow the measured time, so two
  runs, or a run and its resumed copy, need not take the same decisions: frames.csv's `updated` column records
  which were taken. The credit is saved in the resume state, so a resumed run keeps spending the same budget.

Learning rates stay those of the schedule: `--lr-scale` rescales them (fewer updates may want larger ones; choose it
on a validation stream).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Budget:
    """Which frames are adapted on: every `every`-th stream index, within `seconds` of step time per frame on
    average (0: no time budget)."""

    every: int = 1
    seconds: float = 0.0
    credit: float = 0.0

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"adapt_every must be at least 1, got {self.every}")
        if self.seconds < 0:
            raise ValueError(f"frame_budget must be >= 0 seconds, got {self.seconds}")

    @classmethod
    def from_config(cls, cfg: Any, state: dict | None = None) -> Budget:
        """The budget of an `AdaptConfig` (fields absent from an older config mean no budget), continued from a
        resume state's `budget` entry when there is one."""
        budget = cls(int(getattr(cfg, "adapt_every", 1)), float(getattr(cfg, "frame_budget", 0.0)))
        if state is not None and state.get("budget"):
            budget.load_state_dict(state["budget"])
        return budget

    @property
    def active(self) -> bool:
        """Whether any frame may be skipped."""
        return self.every > 1 or self.seconds > 0

    def wants(self, index: int) -> bool:
        """Whether the frame of stream index `index` is adapted on."""
        if index % self.every:
            return False
        return self.seconds <= 0 or self.credit >= 0

    def spend(self, seconds: float) -> None:
        """Account for one frame whose step took `seconds` (adapted or not)."""
        if self.seconds > 0:
            self.credit = min(self.credit + self.seconds - seconds, self.seconds)

    def state_dict(self) -> dict[str, float]:
        return {"credit": self.credit}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.credit = float(state["credit"])
