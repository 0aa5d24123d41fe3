"""The accuracy-cost frontier of docs/speed.md: PA-MPJPE and MPJPE against the cost per frame (a ratio to prediction
alone), from the figures of docs/speed.md.

    python docs/make_frontier_plot.py            # docs/frontier.png

Costs: `python -m pipelines.cost_profile --networks committed --rounds 8` (the committed model, one run). Errors:
the benchmark of record (README, GT and estimated 2D) and, for the budgeted schedules, the validation world's first
600 frames (`python -m pipelines.benchmark --plan budget_sweep --jobs 1`; its base model and K = 1 rows are drawn
with them, so each panel compares runs on one stream). Edit the tables below when the figures change.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# the paper schedule as it runs on the record (1.02 updates per frame): its bilevel step without dynamic steps
COST = {"base model": 1.0, "DynaBOA (paper)": 12.68, "fast preset": 4.29, "finetune x3": 6.66,
        **{f"x{rates}, K={k}": cost for k, cost in ((2, 3.95), (4, 2.35), (8, 1.79)) for rates in (3, 6, 12, 24)}}
# (PA-MPJPE, MPJPE) on the stream of record (3,288 frames)
RECORD = {"GT 2D": {"base model": (147.5, 236.2), "DynaBOA (paper)": (108.6, 172.1), "fast preset": (112.2, 185.1),
                    "finetune x3": (92.0, 151.2)},
          "estimated 2D": {"base model": (149.1, 236.9), "DynaBOA (paper)": (110.7, 176.7),
                           "fast preset": (113.5, 187.0), "finetune x3": (102.1, 162.1)}}
# (PA-MPJPE, MPJPE) on the validation world's first 600 frames, GT 2D (empty until the sweep has run)
VALIDATION: dict[str, tuple[float, float]] = {
    "base model": (159.9, 261.5), "finetune x3": (81.2, 119.7), "x3, K=2": (101.2, 142.0), "x3, K=4": (131.3, 180.5),
    "x3, K=8": (146.3, 207.3), "x6, K=2": (89.5, 125.7), "x6, K=4": (105.5, 148.3), "x12, K=4": (97.3, 134.1),
    "x12, K=8": (109.5, 154.8), "x24, K=8": (102.1, 139.3)}


def main() -> int:
    panels = [(f"stream of record, {k}", v) for k, v in RECORD.items()]
    if VALIDATION:
        panels.append(("validation world, 600 frames, GT 2D", VALIDATION))
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 6.5), squeeze=False)
    for col, (title, errors) in enumerate(panels):
        for row, metric in enumerate(("PA-MPJPE", "MPJPE")):
            ax = axes[row][col]
            for name, values in errors.items():
                ax.scatter(COST[name], values[row], s=25)
                ax.annotate(name, (COST[name], values[row]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlim(0.8, 40)
            ax.set_xlabel("cost per frame (x prediction alone)")
            ax.set_ylabel(f"{metric} (mm)")
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(__file__).with_name("frontier.png")
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
