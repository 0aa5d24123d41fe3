"""Why the components do or do not change the result: per frame of a benchmark stream, each loss term's value and
the norm of its gradient, how far the probe moves the weights against the frame's whole update, the dynamic rule's
feature change against its threshold, and how close the retrieved exemplars are to the frame in pose.

    python -m pipelines.diagnose --method DynaBOA --frames 300 --out exps/diagnose/paper
    python -m pipelines.diagnose --method DynaBOA --frames 300 --set lr_scale=10 --out exps/diagnose/x10

Writes `<out>/terms.csv` (frame, level, term, value, gradient norm), `<out>/frames.csv` (frame, probe move, update
move, steps, feature changes, exemplar pose distances) and `<out>/summary.md`. Gradient norms need one extra backward
per term, so this runs several times slower than the method itself; it changes nothing the method computes.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from config import REPO_ROOT, DataPaths

logger = logging.getLogger(__name__)


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t.detach().double() ** 2).sum() for t in tensors)))


def pose_distance_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean geodesic angle (degrees) between the body joints (1-23, the root excluded) of axis-angle poses [n, 72]
    and [1, 72]."""
    from utils.geometry import batch_rodrigues

    ra = batch_rodrigues(a.reshape(-1, 3)).view(-1, 24, 3, 3)[:, 1:]
    rb = batch_rodrigues(b.reshape(-1, 3)).view(-1, 24, 3, 3)[:, 1:]
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).mean(-1)


class Recorder:
    """The adaptor's inspector and exemplar proxy: records terms and gradient norms, the probe's move and the
    retrieved exemplars' poses of the current frame."""

    def __init__(self, adaptor, bank) -> None:
        self.adaptor, self.bank = adaptor, bank
        self.terms: list[tuple[str, str, float, float]] = []
        self.probe_move = 0.0
        self.poses: list[torch.Tensor] = []
        self.seen: set[str] = set()
        adaptor.inspector = self.inspect
        if bank is not None:
            adaptor.exemplars = self

    def retrieve(self, feature: torch.Tensor, n: int):
        batch = self.bank.retrieve(feature, n)
        self.poses.append(batch.pose.detach().cpu())
        return batch

    def inspect(self, level: str, terms: dict[str, torch.Tensor], params: dict[str, torch.Tensor]) -> None:
        if level in self.seen:  # only the frame's first evaluation of each level (not the extra steps)
            return
        self.seen.add(level)
        names = [n for n, p in params.items() if p.requires_grad]
        tensors = [params[n] for n in names]
        for term, value in terms.items():
            grads = torch.autograd.grad(value, tensors, retain_graph=True, allow_unused=True)
            self.terms.append((level, term, float(value.detach()), _norm(g for g in grads if g is not None)))
        if params is not self.adaptor.params:  # the upper level at the probed weights
            self.probe_move = _norm(params[n] - self.adaptor.params[n] for n in names)

    def start_frame(self) -> None:
        self.terms, self.probe_move, self.poses, self.seen = [], 0.0, [], set()


def diagnose(root: Path, method: str, protocol: str, frames: int, overrides: dict, out: Path) -> str:
    from datasets.evaluation import Evaluator
    from models.adaptor import Frame
    from pipelines.benchmark import run_configs
    from pipelines.session import adaptor_for_run, build_stream

    run, adapt = run_configs(root, out, method, protocol, frames, 0)
    adapt = dataclasses.replace(adapt, **overrides)
    paths = DataPaths.from_root(root)
    torch.manual_seed(run.seed)
    adaptor, img_res = adaptor_for_run(run, adapt, paths, torch.device("cpu"))
    stream, evaluator = build_stream(run, paths, img_res), Evaluator(paths, torch.device("cpu"))
    bank = adaptor.exemplars
    rec = Recorder(adaptor, bank)
    out.mkdir(parents=True, exist_ok=True)
    term_rows, frame_rows = [], []
    for index in range(min(frames, len(stream))):
        item = stream[index]
        rec.start_frame()
        before = [p.detach().clone() for p in adaptor.params.values()]
        res = adaptor.step(Frame(item.image[None], item.keypoints[None], item.track))
        move = _norm(p - b for p, b in zip(adaptor.params.values(), before))
        term_rows += [(index, *t) for t in rec.terms if t[0] in ("lower", "upper")]
        gt = torch.as_tensor(item.gt["pose"])[None]
        ex_deg = float(pose_distance_deg(torch.cat(rec.poses), gt).mean()) if rec.poses else np.nan
        rand_deg = np.nan
        if bank is not None:
            pick = torch.randint(len(bank.labels["pose"]), (8,))
            rand_deg = float(pose_distance_deg(bank.labels["pose"][pick].cpu(), gt).mean())
        metrics = evaluator(res.vertices, item.gt)
        frame_rows.append((index, rec.probe_move, move, 1 + res.dynamic_steps,
                           ";".join(f"{c:.3g}" for c in res.feature_changes), ex_deg, rand_deg,
                           metrics["pa_mpjpe"], metrics["mpjpe"]))
        if index % 50 == 0:
            logger.info("frame %d: PA-MPJPE %.1f, update move %.3g, probe move %.3g", index, metrics["pa_mpjpe"],
                        move, rec.probe_move)
    write_csv(out / "terms.csv", ("frame", "level", "term", "value", "grad_norm"), term_rows)
    write_csv(out / "frames.csv", ("frame", "probe_move", "update_move", "updates", "feature_changes",
                                   "exemplar_pose_deg", "random_pose_deg", "pa_mpjpe", "mpjpe"), frame_rows)
    text = summarize(term_rows, frame_rows, adapt.cos_sim_threshold)
    (out / "summary.md").write_text(text)
    return text


def write_csv(path: Path, header: Sequence[str], rows: list) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def summarize(term_rows: list, frame_rows: list, threshold: float) -> str:
    """Median value and gradient norm per level and term, with the term's share of the level's summed norms; the
    probe's and the update's moves; the feature change after the frame's update against the threshold; exemplar
    pose distances against random source frames."""
    lines = ["| level | term | median value | median gradient norm | share of the summed norms |", "|---|---|---|---|---|"]
    for level in ("lower", "upper"):
        rows = [r for r in term_rows if r[1] == level]
        total = sum(r[4] for r in rows) or 1.0
        for term in dict.fromkeys(r[2] for r in rows):
            sel = [r for r in rows if r[2] == term]
            lines.append(f"| {level} | {term} | {np.median([r[3] for r in sel]):.4g} | "
                         f"{np.median([r[4] for r in sel]):.4g} | {100 * sum(r[4] for r in sel) / total:.1f} % |")
    fr = np.array([r[1:4] for r in frame_rows], float)
    first = np.array([float(r[4].split(";")[0]) for r in frame_rows if r[4]])
    ex = np.array([r[5] for r in frame_rows], float)
    rnd = np.array([r[6] for r in frame_rows], float)
    lines += ["", f"- frames: {len(frame_rows)}; updates per frame: {fr[:, 2].mean():.2f}",
              f"- probe move |theta' - theta|: median {np.median(fr[:, 0]):.3g}; the frame's whole update "
              f"|delta theta|: median {np.median(fr[:, 1]):.3g}; ratio median "
              f"{np.median(fr[:, 0] / np.maximum(fr[:, 1], 1e-30)):.3g}",
              f"- feature change 1 - cos after the frame's first update: median {np.median(first):.3g}, "
              f"90th percentile {np.percentile(first, 90):.3g}, above the threshold {threshold:g} on "
              f"{100 * np.mean(first > threshold):.1f} % of frames" if len(first) else "- no feature change recorded",
              f"- retrieved exemplars' body pose vs the frame's GT: mean {np.nanmean(ex):.1f} degrees per joint; "
              f"random source frames: {np.nanmean(rnd):.1f} degrees"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT / "data" / "synthetic", help="the world's data root")
    parser.add_argument("--method", default="DynaBOA", help="a method of pipelines/plans/methods.yaml")
    parser.add_argument("--keypoints", default="GT 2D", choices=("GT 2D", "estimated 2D"))
    parser.add_argument("--frames", type=int, default=300, help="first frames of the stream")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override an adaptation option (e.g. lr_scale=10)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    print(diagnose(args.root, args.method, args.keypoints, args.frames, overrides, args.out), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
