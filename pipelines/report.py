"""Tables and learning curves of benchmark runs, from their `frames.csv` (one row per frame, in stream order).

- the summary table: errors over the whole stream, seconds and updates per frame, change against the base model;
- windows: the mean error over consecutive windows of `window` frames of the stream, per run (PA-MPJPE and MPJPE),
  with the number of windows that end worse than the base model;
- per sequence: PA-MPJPE per sequence of the stream;
- the curves: one PNG, PA-MPJPE and MPJPE per window, one panel per kind of 2D keypoints.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

Key = tuple[str, str]  # (method, protocol)


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "frames.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def column(rows: Sequence[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r[key]) if r.get(key) not in ("", None) else np.nan for r in rows])


def window_means(rows: Sequence[dict[str, str]], key: str, window: int) -> np.ndarray:
    """The mean of `key` over frames [0, window), [window, 2 window), ... (the last window may be shorter)."""
    values = column(rows, key)
    return np.array([np.nanmean(values[i:i + window]) for i in range(0, len(values), window)])


def updates_per_frame(rows: Sequence[dict[str, str]]) -> float:
    """Adam steps per frame: the frame's update (when it was updated) plus its extra steps."""
    if not rows:
        return 0.0
    return float(np.mean([(r["updated"] == "True") + float(r["dynamic_steps"] or 0) for r in rows]))


def _change(value: float, base: float | None) -> str:
    return "" if base is None else f"{100 * (value / base - 1):+.1f} %"


def summary_table(results: dict[Key, dict], rows: dict[Key, list[dict[str, str]]], window: int) -> str:
    lines = ["| method | 2D keypoints | PA-MPJPE (mm) | MPJPE (mm) | PVE (mm) | s / frame | updates / frame | "
             "PA-MPJPE vs base | MPJPE vs base | windows worse than base (PA / MPJPE) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (method, protocol), m in results.items():
        base_key = ("base model", protocol)
        base = results.get(base_key) if method != "base model" else None
        worse = ""
        if base is not None and base_key in rows:
            counts = [int(np.sum(window_means(rows[(method, protocol)], k, window)
                                 > window_means(rows[base_key], k, window))) for k in ("pa_mpjpe", "mpjpe")]
            worse = f"{counts[0]} / {counts[1]} of {len(window_means(rows[base_key], 'mpjpe', window))}"
        lines.append(
            f"| {method} | {protocol} | {m['pa_mpjpe']:.1f} | {m['mpjpe']:.1f} | {m['pve']:.1f} | "
            f"{m['seconds']:.3f} | {updates_per_frame(rows[(method, protocol)]):.2f} | "
            f"{_change(m['pa_mpjpe'], base and base['pa_mpjpe'])} | {_change(m['mpjpe'], base and base['mpjpe'])} | "
            f"{worse} |")
    return "\n".join(lines) + "\n"


def window_table(rows: dict[Key, list[dict[str, str]]], key: str, window: int) -> str:
    n = max(len(window_means(r, key, window)) for r in rows.values())
    head = "| method | 2D keypoints | " + " | ".join(str(i * window) for i in range(n)) + " |"
    lines = [head, "|---|---|" + "---|" * n]
    for (method, protocol), r in rows.items():
        means = window_means(r, key, window)
        lines.append(f"| {method} | {protocol} | " + " | ".join(f"{v:.1f}" for v in means) + " |")
    return "\n".join(lines) + "\n"


def sequence_table(results: dict[Key, dict]) -> str:
    names = list(next(iter(results.values())).get("per_sequence", {}))
    lines = ["| method | 2D keypoints | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for (method, protocol), m in results.items():
        per = m.get("per_sequence", {})
        lines.append(f"| {method} | {protocol} | " + " | ".join(
            f"{per[s]['pa_mpjpe']:.1f}" if s in per and "pa_mpjpe" in per[s] else "" for s in names) + " |")
    return "\n".join(lines) + "\n"


def format_report(results: dict[Key, dict], rows: dict[Key, list[dict[str, str]]], window: int) -> str:
    """The summary table, the window tables and the per-sequence table, in markdown."""
    return (summary_table(results, rows, window)
            + f"\nPA-MPJPE (mm) per window of {window} frames (the column is the window's first frame):\n\n"
            + window_table(rows, "pa_mpjpe", window)
            + f"\nMPJPE (mm) per window of {window} frames:\n\n" + window_table(rows, "mpjpe", window)
            + "\nPA-MPJPE (mm) per sequence:\n\n" + sequence_table(results))


def plot_curves(rows: dict[Key, list[dict[str, str]]], window: int, paths: Sequence[Path]) -> None:
    """PA-MPJPE and MPJPE per window for every run: rows of panels per kind of keypoints, written to each path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(p for _, p in rows))
    methods = [m for m in dict.fromkeys(m for m, _ in rows) if m != "base model"]
    # one style per method everywhere: ten colours, then the same colours dashed, then dotted
    styles = {m: {"color": plt.get_cmap("tab10")(i % 10), "linestyle": ("-", "--", ":")[i // 10 % 3]}
              for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(protocols), 2, figsize=(16, 4.6 * len(protocols)), squeeze=False)
    for i, protocol in enumerate(protocols):
        for j, (key, label) in enumerate((("pa_mpjpe", "PA-MPJPE (mm)"), ("mpjpe", "MPJPE (mm)"))):
            ax = axes[i, j]
            for (method, proto), r in rows.items():
                if proto != protocol:
                    continue
                means = window_means(r, key, window)
                style = {"color": "black", "linewidth": 2.5} if method == "base model" else styles[method]
                ax.plot(np.arange(len(means)) * window + window / 2, means, marker="o", markersize=3,
                        label=method, **style)
            ax.set_title(f"{label}, {protocol}, per window of {window} frames")
            ax.set_xlabel("frame of the stream")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[i, 1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    plt.close(fig)
