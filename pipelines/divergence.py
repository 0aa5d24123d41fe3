"""A run's numerical health, checked as frames finish: a non-finite prediction is never written as a result, and a
run whose updates were mostly skipped as non-finite says so at its end.

The adaptor already refuses an update whose loss or gradient is not finite (`models.meta.NonFiniteGradientError`: the
frame is predicted with the weights it had); when the weights themselves have diverged (a learning rate far too
high), the prediction is NaN or infinite, and the run stops with one line instead of writing it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from datasets.runrecord import RunError

logger = logging.getLogger("dynaboa")
CHECKED = ("rotmat", "betas", "pred_cam", "cam_t_full")  # the arrays a frame's results are made of


class Diverged(RunError):
    """The adapted model's prediction is not finite: the run stops before writing it."""


def require_finite(arrays: dict[str, np.ndarray], where: str, lr: float) -> None:
    """Raise `Diverged` (naming the frame `where` and the learning rate) when a result array is not finite."""
    bad = [key for key in CHECKED if key in arrays and not np.isfinite(arrays[key]).all()]
    if bad:
        raise Diverged(f"adaptation diverged at {where}: the prediction ({', '.join(bad)}) is not finite (NaN or "
                       f"infinite), so it was not written and the run stopped. The learning rate is most likely too "
                       f"high (--lr {lr:g}; the default is 3e-06): start again with a lower --lr and --overwrite")


@dataclass
class UpdateCount:
    """Frames whose update ran, and frames whose update was skipped because its loss or gradient was not finite."""

    updated: int = 0
    nonfinite: int = 0

    def add(self, updated: bool, reason: str | None) -> None:
        if updated:
            self.updated += 1
        elif reason and "non-finite" in reason:
            self.nonfinite += 1

    def report(self, lr: float) -> None:
        """Log how many updates were skipped as non-finite: a warning when they are most of them."""
        tried = self.updated + self.nonfinite
        if not self.nonfinite:
            return
        text = (f"{self.nonfinite} of {tried} updates were skipped because their loss or gradient was not finite "
                f"(NaN or infinite)")
        if 2 * self.nonfinite > tried:
            logger.warning("%s: adaptation mostly failed and the results are not to be trusted. The learning rate is "
                           "most likely too high (--lr %g; the default is 3e-06)", text, lr)
        else:
            logger.info("%s", text)
