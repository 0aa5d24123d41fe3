"""A run directory that is written as the run goes and can be resumed.

    <exppath>/config.json         resolved configuration and provenance (base model and hash, body model, commit)
    <exppath>/frames.csv          one row per frame, appended and flushed as frames finish
    <exppath>/preds/%06d.npz      predictions in chunks of `chunk` frames
    <exppath>/state.pt            everything needed to continue (adaptor state, next frame), written atomically at the
                                  end of every chunk; deleted when the run finishes unless kept (`keep_state`)
    <exppath>/results.npz         every frame's predictions in one file, merged from the chunks at the end
    <exppath>/metrics.json        summary (global frame means and per-sequence means), written at the end

A resumed run loads `state.pt`, drops rows of `frames.csv` past the saved frame, and continues; frames after the
last chunk boundary are recomputed, so the results equal an uninterrupted run. `load_results` and `tracks_of` read
`results.npz` back (the exports).
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datasets.base import StreamItem
from datasets.runrecord import RunError, naming_full_disk, one_line
from utils import io
from utils.geometry import full_image_camera, rotmat_to_axis_angle, weak_cam_to_translation
from utils.io import atomic_path, torch_load_tensors, write_text_atomic

logger = logging.getLogger(__name__)

FIELDS = ["index", "imgname", "track", "updated", "dynamic_steps", "seconds", "mpjpe", "pa_mpjpe", "pve"]


def atomic_torch_save(obj: Any, path: Path) -> None:
    """`torch.save` through `utils.io.atomic_path` (the state is plain tensors and containers: weights_only reads it)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def savez_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`utils.io.savez_atomic`; a full disk raises `DiskFull` naming `path`."""
    with naming_full_disk(path):
        io.savez_atomic(path, arrays)


def read_state(path: Path) -> dict[str, Any]:
    """A run's resume state; `RunError` naming the file when it is unreadable or not a state."""
    try:
        state = torch_load_tensors(path, "resume state")
    except Exception as err:  # torch raises several types for a truncated or foreign file
        raise RunError(f"{path} is not a readable resume state ({one_line(err)}); start the run again with "
                       "--overwrite") from err
    if not isinstance(state, dict) or "next_index" not in state:
        raise RunError(f"{path} is not a resume state of this program (no next_index); start again with --overwrite")
    return state


class RunWriter:
    """Streams per-frame rows and prediction chunks to `exppath`.

    Args:
        exppath: the run directory.
        chunk: frames per prediction file and per saved state.
        resume: continue a run in `exppath` (when it has a state); otherwise `exppath` must not hold a run.
        keep_state: keep state.pt after `finish` (by default it is deleted: it is only needed to continue).
    """

    def __init__(self, exppath: Path, chunk: int = 500, resume: bool = False, keep_state: bool = False) -> None:
        self.exppath, self.chunk, self.keep_state = Path(exppath), chunk, keep_state
        self.state_path = self.exppath / "state.pt"
        if not resume and (self.exppath / "frames.csv").exists():
            raise FileExistsError(f"{self.exppath} already holds a run: pass --resume to continue it, or choose "
                                  "another --expname")
        (self.exppath / "preds").mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] | None = None
        self.start = 0
        if resume and self.state_path.exists():
            self.state = read_state(self.state_path)
            self.start = int(self.state["next_index"])
        elif resume and (self.exppath / "metrics.json").exists():
            raise RunError(f"{self.exppath} is a finished run and its resume state was deleted at the end (keep it "
                           "with --keep-state), so it cannot be extended; start it again with --overwrite")
        self._truncate_rows(self.start)
        self.csv_file = open(self.exppath / "frames.csv", "a", newline="")
        self.rows = csv.DictWriter(self.csv_file, fieldnames=FIELDS)
        if self.csv_file.tell() == 0:
            self.rows.writeheader()
        self.pending: dict[str, list[np.ndarray]] = {}
        self.state_logged = False

    def _truncate_rows(self, keep: int) -> None:
        path = self.exppath / "frames.csv"
        if not path.exists():
            return
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))[:keep]
        with naming_full_disk(path), atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def add(self, row: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """One finished frame: a CSV row (flushed now) and prediction arrays (written with the chunk)."""
        with naming_full_disk(self.exppath / "frames.csv"):
            self.rows.writerow({k: row.get(k, "") for k in FIELDS})
            self.csv_file.flush()
        for key, value in arrays.items():
            self.pending.setdefault(key, []).append(np.asarray(value))

    def end_chunk(self, next_index: int, state: dict[str, Any]) -> None:
        """Write the chunk's predictions, then the state that resumes after them."""
        if self.pending:
            first = next_index - len(next(iter(self.pending.values())))
            savez_atomic(self.exppath / "preds" / f"{first:06d}.npz", {k: np.stack(v) for k, v in self.pending.items()})
            self.pending = {}
        with naming_full_disk(self.state_path):
            atomic_torch_save({**state, "next_index": next_index}, self.state_path)
        if not self.state_logged:
            self.state_logged = True
            logger.info("resume state %s: %.1f MB, rewritten every %d frames; deleted when the run finishes%s",
                        self.state_path, self.state_path.stat().st_size / 1e6, self.chunk,
                        " (kept: --keep-state)" if self.keep_state else " (--keep-state keeps it)")

    def rows_so_far(self) -> list[dict[str, str]]:
        with open(self.exppath / "frames.csv", newline="") as fh:
            return list(csv.DictReader(fh))

    def finish(self, summary: dict[str, Any]) -> None:
        """Close the CSV, merge the prediction chunks into results.npz and write metrics.json."""
        self.csv_file.close()
        chunks = sorted((self.exppath / "preds").glob("*.npz"))
        if chunks:
            parts = [dict(np.load(p)) for p in chunks]
            merged = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
            savez_atomic(self.exppath / "results.npz", merged)
        if self.state_path.exists() and not self.keep_state:
            self.state_path.unlink()
        write_text_atomic(self.exppath / "metrics.json", json.dumps(summary, indent=2) + "\n")


METRIC_KEYS = ("mpjpe", "pa_mpjpe", "pve")


def _means(rows: list[dict[str, str]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in METRIC_KEYS + ("dynamic_steps", "seconds"):
        values = [float(r[key]) for r in rows if r.get(key) not in ("", None)]
        if values:
            out[key] = float(np.mean(values))
    return out


def summarize(rows: list[dict[str, str]]) -> dict[str, Any]:
    """Means over all frames (one global frame average, as the original) and per sequence (the track name before
    its person id), plus the fraction of frames that were updated."""
    out: dict[str, Any] = {"frames": len(rows)}
    if not rows:
        return out
    out.update(_means(rows))
    out["updated_fraction"] = float(np.mean([r["updated"] == "True" for r in rows]))
    sequences: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        sequences.setdefault(row["track"].rsplit(":", 1)[0], []).append(row)
    out["per_sequence"] = {name: {"frames": len(seq_rows), **_means(seq_rows)} for name, seq_rows in sequences.items()}
    return out


# --- reading results.npz (the exports) --------------------------------------------------------------------------------

RESULT_KEYS = ("track", "frame_id", "imgname", "rotmat", "pose", "betas", "pred_cam", "bbox", "img_size",
               "focal_length", "cam_t_full")


def load_results(run_dir: Path) -> dict[str, np.ndarray]:
    """The arrays of `<run_dir>/results.npz` (one row per adapted frame, written by dynaboa.py)."""
    path = Path(run_dir) / "results.npz"
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} not found: `python dynaboa.py --dataset internet --expname "
                                f"{Path(run_dir).name}` writes it at the end of a run")
    with np.load(path) as data:
        missing = [k for k in RESULT_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{path}: keys {missing} missing (has {sorted(data.files)})")
        out = {key: data[key] for key in data.files}
    bad = ~np.all([np.isfinite(out[k].reshape(len(out[k]), -1)).all(1) for k in ("rotmat", "betas", "cam_t_full")], 0)
    if bad.any():  # an older version wrote a diverged run's predictions; they are not exported
        raise ValueError(f"{path}: {int(bad.sum())} of {len(bad)} frames hold non-finite predictions (NaN or "
                         "infinite: the adaptation diverged); nothing was exported. Run the adaptation again with a "
                         "lower --lr and --overwrite")
    return out


def tracks_of(results: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Track name `"<video>:<k>"` -> its row indices in frame order."""
    order = np.lexsort((results["frame_id"], results["track"]))
    tracks: dict[str, list[int]] = {}
    for i in order.tolist():
        tracks.setdefault(str(results["track"][i]), []).append(i)
    return {name: np.array(rows) for name, rows in tracks.items()}


def split_track(name: str) -> tuple[str, int]:
    """`"<video>:<k>"` -> (video, k)."""
    video, _, k = name.rpartition(":")
    return video, int(k)


def prediction_arrays(item: StreamItem, res, focal_length: float) -> dict[str, np.ndarray]:
    """What is kept of a frame (one row of results.npz): ids, SMPL parameters, cameras and the box.

    The full-image camera has focal `focal_length` (0: EasyMocap's 1.2 min(W, H)) at the image centre; its
    translation comes from the crop camera as docs/method.md §2.4 derives.
    """
    out = res.output
    rotmat = out.pred_rotmat[0].detach()
    width, height = item.img_size
    side = item.scale * 200.0
    cam = out.pred_cam.detach()
    cam_full, focal = full_image_camera(cam, item.center, item.scale, item.img_size, focal_length)
    return {"index": np.int64(item.index), "track": np.str_(f"{item.track[0]}:{item.track[1]}"),
            "frame_id": np.int64(item.frame_id), "imgname": np.str_(item.imgname),
            "rotmat": rotmat.cpu().numpy(), "pose": rotmat_to_axis_angle(rotmat).reshape(72).cpu().numpy(),
            "betas": out.pred_betas[0].detach().cpu().numpy(), "pred_cam": cam[0].cpu().numpy(),
            "cam_t": weak_cam_to_translation(cam)[0].cpu().numpy(), "cam_t_full": cam_full[0].cpu().numpy(),
            "focal_length": np.float32(focal), "img_size": np.array([width, height], np.int64),
            "bbox": np.array([*item.center, side], np.float32)}
