"""DynaBOA on a live camera or a video file: one person, adapted frame by frame, the mesh drawn over the frames.

    python dynaboa_webcam.py                                     # camera 0, plain online fine-tuning (use_boa 0)
    python dynaboa_webcam.py --capture-mode video --video clip.mp4 --use-boa --save-video out.mp4 --no-display

The original's spellings work too: `--use_boa 1 --dynamic_boa 1 --save_video 1` (saves `<res_dir>/output.mp4`),
`--capture_mode video --vid_path clip.mp4`, `--res_dir`, `--model_file`, `--test_basemodel 1`.

The adaptation is `models.adaptor.Adaptor`, built by `pipelines.session.build_adaptor`, with the original webcam
defaults: plain fine-tuning (`use_boa 0`, `dynamic_boa 0`), no Human3.6M retrieval, the OpenPose-block keypoints
(filled by the embedded MediaPipe detector's `mediapipe33` layout). A live camera is read by a thread that keeps only
the newest frame: the program processes the newest frame and drops the rest, so it keeps up at its processing rate;
a video file is processed frame by frame. One person is tracked: the largest confident box (MediaPipe tracks it
between frames). A frame without a person is shown without an update. The processing rate is shown on the frames
and logged. Keys (display on): `q` quits, `r` resets the adaptation to the base model. The saved video plays at the
true rate: the source's frame rate for a file, the measured processing rate for a live camera.

By default every frame waits for its update. `--async-adapt` adapts beside the prediction instead
(`pipelines/async_adapt.py`): every frame is predicted at once with the newest adapted weights, while a background
process (`--adapt-in process`, the default; `pipelines/async_process.py`) or thread (`--adapt-in thread`) adapts on
the newest frames (a queue of `--adapt-queue` frames that drops the oldest) and publishes its weights atomically;
the frames and the log show frames shown per second, updates per second and the staleness (frames between the frame
shown and the newest frame adapted on). `--adapt-every K` adapts on every K-th frame only (synchronous).
`--realtime` plays a video file at its frame rate, as a camera would deliver it:

    python dynaboa_webcam.py --capture-mode video --video clip.mp4 --realtime --async-adapt --no-display
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from config import DataPaths, build_parser, config_from_namespace
from datasets.runrecord import provenance
from models.adaptor import Adaptor
from pipelines.live import RateMeter, RunStats, Session, VideoSink, WebcamAdaptConfig, WebcamConfig, open_source
from pipelines.session import build_adaptor
from utils.io import write_json
from utils.runtime import resolve_device, seed_everything

logger = logging.getLogger("dynaboa_webcam")


def parse_args(argv: Sequence[str] | None = None) -> tuple[WebcamConfig, WebcamAdaptConfig]:
    parser = build_parser(__doc__.splitlines()[0], [(WebcamConfig, "webcam"), (WebcamAdaptConfig, "adaptation")],
                          aliases={"video": ("--vid_path",)})
    ns = parser.parse_args(argv)
    cfg = config_from_namespace(WebcamConfig, ns)
    if cfg.capture_mode == "video" and cfg.video is None:
        parser.error("--capture-mode video needs --video PATH (or --vid_path PATH)")
    return cfg, config_from_namespace(WebcamAdaptConfig, ns, ns.config)


def save_path(cfg: WebcamConfig) -> Path | None:
    """Where the shown frames go: None ('' or '0'), `<res_dir>/output.mp4` ('1', the original's flag), else a path."""
    if cfg.save_video in ("", "0"):
        return None
    return cfg.res_dir / "output.mp4" if cfg.save_video == "1" else Path(cfg.save_video)


def ensure_display() -> None:
    """Fail early, with the way out, when this OpenCV build cannot open windows (opencv-python-headless)."""
    try:
        cv2.namedWindow("DynaBOA")
    except cv2.error as err:
        raise RuntimeError("this OpenCV build has no GUI support (the pinned opencv-python-headless): run with "
                           "--no-display --save-video out.mp4, or install opencv-python in its place") from err


def handle_key(key: int, adaptor: Adaptor | Session) -> bool:
    """React to a key code: `q` stops (returns False), `r` resets the adaptation to the base model."""
    if key == ord("q"):
        return False
    if key == ord("r"):
        adaptor.reset()
        logger.info("reset to the base model")
    return True


def run(cfg: WebcamConfig, adapt: WebcamAdaptConfig) -> RunStats:
    """The capture -> adapt -> show/save loop; returns what was done."""
    paths = DataPaths.from_root(cfg.data_root)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    adaptor, img_res = build_adaptor(adapt, paths, device, cfg.model_file, cfg.img_res, seed=cfg.seed)
    factory = functools.partial(build_adaptor, adapt, paths, device, cfg.model_file, cfg.img_res, seed=cfg.seed)
    session, meter, stats = Session(cfg, adaptor, img_res, device, factory), RateMeter(), RunStats()
    frames = sink = None
    try:
        frames, source_fps = open_source(cfg)
        target = save_path(cfg)
        sink = VideoSink(target, source_fps) if target is not None else None
        if target is not None:  # what made the video: base model and hash, body model, commit
            record = provenance(cfg.model_file or paths.base_model, paths.smpl_model_dir / "SMPL_NEUTRAL.pkl")
            write_json(target.with_name(target.name + ".provenance.json"), record)
        for bgr in frames:
            panels = session.process(np.ascontiguousarray(bgr[:, :, ::-1]), stats)
            stats.frames += 1
            session.counters(stats)
            if not present(panels, session.status(meter.tick()), sink, cfg.display, session, stats):
                break
            if cfg.max_frames and stats.frames >= cfg.max_frames:
                break
    finally:
        if frames is not None:
            frames.close()
        session.close()
        session.counters(stats)
        stats.fps = meter.mean_rate
        if sink is not None:
            sink.close(stats.fps)
        if cfg.display:
            cv2.destroyAllWindows()
    logger.info("%d frames at %.2f fps: %d updated, %d without a person%s", stats.frames, stats.fps, stats.updated,
                stats.no_person, async_counters(stats, cfg))
    return stats


def async_counters(stats: RunStats, cfg: WebcamConfig) -> str:
    """The asynchronous adaptation's counters for the log ('' without --async-adapt)."""
    if not cfg.async_adapt:
        return ""
    return (f", {stats.updates_per_s:.2f} updates/s, mean staleness {stats.staleness:.1f} frames, "
            f"{stats.adapt_dropped} frames dropped from the adaptation queue")


def present(panels: list[np.ndarray], status: str, sink: VideoSink | None, display: bool, session: Session,
            stats: RunStats) -> bool:
    """Show and save the panels side by side with the status line (`Session.status`: frames shown per second, and
    the asynchronous counters); False when the user quits."""
    shown = np.ascontiguousarray(np.concatenate(panels, axis=1)[:, :, ::-1])
    cv2.putText(shown, status, (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2)
    if sink is not None:
        sink.write(shown)
    if stats.frames % 30 == 0:
        logger.info("%d frames, %s, %d updated, %d without a person", stats.frames, status, stats.updated,
                    stats.no_person)
    if not display:
        return True
    cv2.imshow("DynaBOA", shown)
    return handle_key(cv2.waitKey(1) & 0xFF, session)


def main(argv: Sequence[str] | None = None) -> int:
    cfg, adapt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from datasets.assets import check_assets, format_report, missing_required
    from datasets.builtin_assets import builtin_data_root, needs_builtin, warn_builtin

    if cfg.model_file is None and needs_builtin(cfg.data_root):  # a fresh clone: the synthetic-only demonstration
        cfg = dataclasses.replace(cfg, data_root=builtin_data_root())
        warn_builtin(cfg.data_root)

    skip = {"internet root"} | ({"basemodel.pt"} if cfg.model_file else set())  # no video folder; own checkpoint
    statuses = [s for s in check_assets(DataPaths.from_root(cfg.data_root), "internet", source_free=not adapt.retrieval)
                if s.name not in skip]
    if missing_required(statuses):
        logger.error("missing or invalid files:\n%s", format_report(statuses))
        return 1
    try:
        if cfg.display:
            ensure_display()
        run(cfg, adapt)
    except (FileNotFoundError, RuntimeError, OSError, ImportError) as err:
        logger.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
