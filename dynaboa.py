"""DynaBOA online adaptation on a test stream: 3DPW (with metrics) or internet videos.

    python dynaboa.py --dataset 3dpw --expname 3dpw                        # the paper's protocol (#PS, GT 2D)
    DYNABOA_DATA=data/synthetic python dynaboa.py --dataset 3dpw --source-free --keypoints op_j2d

The original's spellings work too (`--use_boa 1 --dynamic_boa 1 --optim_steps 7 --model_file data/basemodel.pt`).
A run directory `<expdir>/<expname>/` receives the resolved config, one CSV row per frame as frames finish, chunks
of predictions and, at each chunk's end, the state that `--resume` continues from; `metrics.json` at the end.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from config import REPO_ROOT, AdaptConfig, DataPaths, build_parser, config_from_namespace, config_to_dict, option
from datasets.base import StreamItem, collate_single
from models.adaptor import Adaptor, Frame
from models.hmr import load_hmr_checkpoint
from models.prior import MaxMixturePrior
from models.smpl import build_smpl
from utils.checkpoint import git_commit, read_checkpoint_extras, resolve_device, seed_everything, write_json
from utils.constants import IMG_RES
from utils.geometry import crop_cam_to_full_cam, rotmat_to_axis_angle, weak_cam_to_translation
from utils.results import RunWriter, summarize

logger = logging.getLogger("dynaboa")


@dataclass
class RunConfig:
    """What to adapt on and where results go."""

    dataset: str = option("test stream", default="3dpw", choices=("3dpw", "internet"))
    expdir: Path = option("output root", default=Path("exps"))
    expname: str = option("run name; results in <expdir>/<expname>", default="3dpw")
    data_root: Path | None = option("data root (default: $DYNABOA_DATA or data/)", default=None)
    model_file: Path | None = option("base model checkpoint (default: <data root>/basemodel.pt)", default=None)
    keypoints: str = option("2D keypoints that drive adaptation on 3DPW: projected GT (#PS) or the file's detections",
                        default="smpl_j2d", choices=("smpl_j2d", "op_j2d"))
    source_free: bool = option("no source exemplars (no Human3.6M needed): retrieval and co-training off", default=False)
    img_res: int = option("crop size; 0 = the checkpoint's img_res entry, else 224", default=0)
    seed: int = option("random seed", default=22)
    device: str = option("auto, cpu or cuda", default="auto")
    max_frames: int = option("stop after this many frames (0 = all)", default=0)
    chunk: int = option("frames per prediction file and per saved resume state", default=500)
    resume: bool = option("continue the run in <expdir>/<expname>", default=False)
    workers: int = option("image-reading worker processes", default=1)
    check_assets: bool = option("only check that every needed file is present and valid, then exit", default=False)
    focal_length: float = option("focal length (pixels) of the full-image camera in the results; 0 = 1.2 min(W, H)",
                                 default=0.0)
    batch_size: int = option("kept for the original's command lines; adaptation is per frame (must be 1)", default=1)


# the original's options that have no effect (reference §1.4); accepted so old command lines still run
IGNORED_ORIGINAL_OPTIONS = ("--seq_seed", "--record_lowerlevel", "--mixtrain", "--save_res")


def parse_args(argv: Sequence[str] | None = None) -> tuple[RunConfig, AdaptConfig]:
    parser = build_parser(__doc__.splitlines()[0], [(RunConfig, "run"), (AdaptConfig, "adaptation")])
    for name in IGNORED_ORIGINAL_OPTIONS:
        parser.add_argument(name, default=None, help="accepted for compatibility; no effect")
    ns = parser.parse_args(argv)
    run, adapt = config_from_namespace(RunConfig, ns), config_from_namespace(AdaptConfig, ns, ns.config)
    if run.batch_size != 1:
        parser.error("adaptation runs one frame at a time: --batch_size must be 1")
    if run.source_free:
        adapt.retrieval = adapt.lower_level_mixtrain = adapt.upper_level_mixtrain = False
    if run.dataset == "internet" and "shape_prior_weight" not in vars(ns):
        adapt.shape_prior_weight = 2e-4  # the original's internet setting (reference §1.5)
    if run.keypoints == "op_j2d" and "keypoint_block" not in vars(ns):
        adapt.keypoint_block = "gt"  # detections are mapped into both blocks
    return run, adapt


def build_stream(run: RunConfig, paths: DataPaths, img_res: int) -> torch.utils.data.Dataset:
    if run.dataset == "3dpw":
        from datasets.pw3d import PW3DStream

        return PW3DStream(paths.dataset_extras, paths.pw3d_root, img_res, run.keypoints)
    from datasets.internet import InternetStream

    return InternetStream(paths.internet_root, img_res)


def build_adaptor(run: RunConfig, adapt: AdaptConfig, paths: DataPaths, device: torch.device
                  ) -> tuple[Adaptor, int]:
    model_file = run.model_file or paths.base_model
    img_res = run.img_res or int(read_checkpoint_extras(model_file).get("img_res", IMG_RES))
    model = load_hmr_checkpoint(model_file).to(device)
    smpl = build_smpl(paths, "neutral").to(device)
    prior = MaxMixturePrior.from_file(paths.gmm_prior).to(device) if adapt.pose_prior_weight > 0 else None
    bank = None
    if adapt.retrieval and (adapt.lower_level_mixtrain or adapt.upper_level_mixtrain):
        from utils.retrieval import ExemplarBank

        bank = ExemplarBank(paths.retrieval_dir, img_res, device, seed=run.seed)
    return Adaptor(model, smpl, adapt, pose_prior=prior, exemplars=bank), img_res


def prediction_arrays(item: StreamItem, res, focal_length: float) -> dict[str, np.ndarray]:
    """What is kept of a frame (one row of results.npz): ids, SMPL parameters, cameras and the box.

    The full-image camera has focal `focal_length` (0: EasyMocap's 1.2 min(W, H)) at the image centre; its
    translation comes from the crop camera as reference-related.md D.4 derives.
    """
    out = res.output
    rotmat = out.pred_rotmat[0].detach()
    width, height = item.img_size
    focal = focal_length or 1.2 * min(width, height)
    side = item.scale * 200.0
    cam = out.pred_cam.detach()
    cam_full = crop_cam_to_full_cam(cam, torch.as_tensor(item.center, dtype=cam.dtype, device=cam.device)[None],
                                    torch.tensor([side], dtype=cam.dtype, device=cam.device), width, height, focal)
    return {"index": np.int64(item.index), "track": np.str_(f"{item.track[0]}:{item.track[1]}"),
            "frame_id": np.int64(item.frame_id), "imgname": np.str_(item.imgname),
            "rotmat": rotmat.cpu().numpy(), "pose": rotmat_to_axis_angle(rotmat).reshape(72).cpu().numpy(),
            "betas": out.pred_betas[0].detach().cpu().numpy(), "pred_cam": cam[0].cpu().numpy(),
            "cam_t": weak_cam_to_translation(cam)[0].cpu().numpy(), "cam_t_full": cam_full[0].cpu().numpy(),
            "focal_length": np.float32(focal), "img_size": np.array([width, height], np.int64),
            "bbox": np.array([*item.center, side], np.float32)}


def adapt_stream(adaptor: Adaptor, stream, writer: RunWriter, evaluator, run: RunConfig, device: torch.device) -> None:
    """The frame loop: adapt, predict, evaluate, write; state saved at every chunk's end."""
    from tqdm import tqdm

    end = len(stream) if run.max_frames <= 0 else min(len(stream), run.max_frames)
    subset = torch.utils.data.Subset(stream, range(writer.start, end))
    loader = torch.utils.data.DataLoader(subset, batch_size=1, collate_fn=collate_single, num_workers=run.workers)
    running: dict[str, list[float]] = {}
    bar = tqdm(loader, total=len(subset), desc="adapting", dynamic_ncols=True)
    for item in bar:
        started = time.perf_counter()
        frame = Frame(item.image[None].to(device), item.keypoints[None].to(device), item.track)
        res = adaptor.step(frame)
        row = {"index": item.index, "imgname": item.imgname, "track": f"{item.track[0]}:{item.track[1]}",
               "updated": res.updated, "dynamic_steps": res.dynamic_steps,
               "seconds": round(time.perf_counter() - started, 4)}
        if evaluator is not None:
            metrics = evaluator(res.vertices, item.gt)
            row.update({k: round(v, 3) for k, v in metrics.items()})
            for key, value in metrics.items():
                running.setdefault(key, []).append(value)
            bar.set_postfix({k: f"{np.mean(v):.1f}" for k, v in running.items()}, refresh=False)
        writer.add(row, prediction_arrays(item, res, run.focal_length))
        if (item.index + 1) % run.chunk == 0 or item.index + 1 == end:
            writer.end_chunk(item.index + 1, resume_state(adaptor))


def resume_state(adaptor: Adaptor) -> dict:
    bank = adaptor.exemplars
    return {"adaptor": adaptor.state_dict(), "torch_rng": torch.get_rng_state(),
            "bank_rng": bank.rng.bit_generator.state if bank is not None else None}


def restore_state(adaptor: Adaptor, state: dict) -> None:
    adaptor.load_state_dict(state["adaptor"])
    torch.set_rng_state(state["torch_rng"])
    if adaptor.exemplars is not None and state["bank_rng"] is not None:
        adaptor.exemplars.rng.bit_generator.state = state["bank_rng"]


def main(argv: Sequence[str] | None = None) -> int:
    run, adapt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    paths = DataPaths.from_root(run.data_root)
    from utils.assets import check_assets, format_report, missing_required

    statuses = check_assets(paths, run.dataset, source_free=not adapt.retrieval)
    if missing_required(statuses):
        logger.error("missing or invalid files under %s:\n%s", paths.root, format_report(statuses))
        return 1
    if run.check_assets:
        logger.info("assets under %s:\n%s", paths.root, format_report(statuses))
        return 0
    seed_everything(run.seed)
    device = resolve_device(run.device)
    adaptor, img_res = build_adaptor(run, adapt, paths, device)
    stream = build_stream(run, paths, img_res)
    exppath = run.expdir / run.expname
    writer = RunWriter(exppath, run.chunk, resume=run.resume)
    if writer.state is not None:
        restore_state(adaptor, writer.state)
        logger.info("resuming %s at frame %d", exppath, writer.start)
    write_json(exppath / "config.json", {"run": config_to_dict(run), "adapt": config_to_dict(adapt),
                                          "img_res": img_res, "frames": len(stream), "git_commit": git_commit(REPO_ROOT)})
    evaluator = None
    if run.dataset == "3dpw":
        from utils.evaluation import Evaluator

        evaluator = Evaluator(paths, device)
    adapt_stream(adaptor, stream, writer, evaluator, run, device)
    summary = summarize(writer.rows_so_far())
    writer.finish(summary)
    logger.info("%s: %d frames, %s", exppath, summary["frames"],
                ", ".join(f"{k} {v:.2f}" for k, v in summary.items() if isinstance(v, float)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
