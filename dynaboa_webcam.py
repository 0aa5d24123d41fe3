"""DynaBOA on a live camera or a video file: one person, adapted frame by frame, the mesh drawn over the frames.

    python dynaboa_webcam.py                                     # camera 0, plain online fine-tuning (use_boa 0)
    python dynaboa_webcam.py --capture-mode video --video clip.mp4 --use-boa --save-video out.mp4 --no-display

The original's spellings work too: `--use_boa 1 --dynamic_boa 1 --save_video 1` (saves `<res_dir>/output.mp4`),
`--capture_mode video --vid_path clip.mp4`, `--res_dir`, `--model_file`, `--test_basemodel 1`.

The adaptation is `models.adaptor.Adaptor`, built by `datasets.session.build_adaptor`, with the original webcam
defaults: plain fine-tuning (`use_boa 0`, `dynamic_boa 0`), no Human3.6M retrieval, the OpenPose-block keypoints
(filled by the embedded MediaPipe detector's `mediapipe33` layout). A live camera is read by a thread that keeps only
the newest frame: the program processes the newest frame and drops the rest, so it keeps up at its processing rate;
a video file is processed frame by frame. One person is tracked: the largest confident box (MediaPipe tracks it
between frames). A frame without a person is shown without an update. The processing rate is shown on the frames
and logged. Keys (display on): `q` quits, `r` resets the adaptation to the base model. The saved video plays at the
true rate: the source's frame rate for a file, the measured processing rate for a live camera.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: busy-waiting threads collapse on shared cores

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from config import AdaptConfig, DataPaths, build_parser, config_from_namespace, option
from datasets.checkpoint import resolve_device, seed_everything, write_json
from datasets.detector import DetectorConfig, PoseDetector, largest_person
from datasets.export import draw_keypoints, overlay_people
from datasets.runrecord import provenance
from datasets.session import build_adaptor
from models.adaptor import Adaptor, Frame
from utils.geometry import full_image_camera
from utils.imutils import person_crop
from utils.keypoints import binarize_confidence, keypoint_box, to_j49
from utils.video import iter_video_frames, video_info

logger = logging.getLogger("dynaboa_webcam")
ADAPTED_COLOR, BASE_COLOR = (205, 129, 98), (100, 100, 200)  # RGB, as the original


@dataclass
class WebcamConfig:
    """Frame source, display and output."""

    capture_mode: str = option("frame source", default="webcam", choices=("webcam", "video"))
    video: Path | None = option("video file of --capture-mode video", default=None)
    camera: int = option("camera index of --capture-mode webcam", default=0)
    save_video: str = option("write the shown frames to this file ('1': <res_dir>/output.mp4, the original's flag)",
                             default="")
    res_dir: Path = option("folder of --save_video 1", default=Path("exps/webcam"))
    display: bool = option("show the frames in a window (needs an OpenCV build with GUI support)", default=True)
    test_basemodel: bool = option("also show the frozen base model's mesh (a third panel)", default=False)
    data_root: Path | None = option("data root (default: $DYNABOA_DATA or data/)", default=None)
    model_file: Path | None = option("base model checkpoint (default: <data root>/basemodel.pt)", default=None)
    img_res: int = option("crop size; 0 = the checkpoint's img_res entry, else 224", default=0)
    focal_length: float = option("focal length (px) of the camera the mesh is drawn with; 0 = 1.2 min(W, H)",
                                 default=0.0)
    seed: int = option("random seed", default=22)
    device: str = option("auto, cpu or cuda", default="auto")
    max_frames: int = option("stop after this many processed frames (0 = until the end or `q`)", default=0)


@dataclass
class WebcamAdaptConfig(AdaptConfig):
    """Adaptation with the original webcam script's defaults (docs/method.md §10)."""

    use_boa: bool = option("bilevel (BOA) step; off = plain online fine-tuning", default=False)
    dynamic_boa: bool = option("dynamic extra steps (with --use-boa)", default=False)
    retrieval: bool = option("retrieve Human3.6M exemplars (needs them in the data root)", default=False)
    lower_level_mixtrain: bool = option("labelled source loss at the lower level", default=False)
    upper_level_mixtrain: bool = option("labelled source loss at the upper level", default=False)
    keypoint_block: str = option("joints that drive adaptation", default="openpose", choices=("gt", "openpose"))


@dataclass
class RunStats:
    """What a session did: frames processed, of which updated and without a person, mean processing rate."""

    frames: int = 0
    updated: int = 0
    no_person: int = 0
    fps: float = 0.0


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


# --- frame sources --------------------------------------------------------------------------------------------------


class LatestFrame:
    """A capture thread that keeps only the newest frame of a live source (older unread frames are dropped).

    Args:
        capture: anything with `read() -> (ok, frame)` and `release()` (a `cv2.VideoCapture`).
    """

    def __init__(self, capture) -> None:
        self.capture, self.dropped = capture, 0
        self._frame, self._count, self._taken = None, 0, 0
        self._cond = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while self._running:
                ok, frame = self.capture.read()
                if not ok:
                    break
                with self._cond:
                    self.dropped += self._count > self._taken  # the previous frame was never read
                    self._frame, self._count = frame, self._count + 1
                    self._cond.notify_all()
        finally:  # the source ended or failed: wake the reader
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def read(self, timeout: float = 5.0) -> np.ndarray | None:
        """The newest frame not returned before (waits for one); None when the source stopped or timed out."""
        with self._cond:
            self._cond.wait_for(lambda: self._count > self._taken or not self._running, timeout)
            if self._count == self._taken:
                return None
            self._taken = self._count
            return self._frame

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2.0)
        self.capture.release()


def open_source(cfg: WebcamConfig) -> tuple[Iterator[np.ndarray], float | None]:
    """BGR frames of the chosen source and its frame rate (None for a live camera: measured instead).

    Raises:
        FileNotFoundError / utils.video.VideoError: the video file is missing or unreadable.
        RuntimeError: the camera cannot be opened or gives no frame.
    """
    if cfg.capture_mode == "video":
        info = video_info(cfg.video)  # raises on a missing or unreadable file
        return (frame for _, frame in iter_video_frames(cfg.video)), info.fps or 30.0
    capture = cv2.VideoCapture(cfg.camera)
    if not capture.isOpened():
        raise RuntimeError(f"camera {cfg.camera} cannot be opened: check that it is connected and not in use by "
                           "another program, pick another with --camera N, or read a file with --capture-mode video "
                           "--video PATH")
    latest = LatestFrame(capture)

    def frames() -> Iterator[np.ndarray]:
        try:
            while (frame := latest.read()) is not None:
                yield frame
        finally:
            latest.close()
            logger.info("camera: %d frames dropped to keep up", latest.dropped)

    return frames(), None


# --- output ---------------------------------------------------------------------------------------------------------


class RateMeter:
    """Processing rate over the last `window` frames (frames per second)."""

    def __init__(self, window: int = 30) -> None:
        self.times: deque[float] = deque(maxlen=window)
        self.first: float | None = None
        self.count = 0

    def tick(self) -> float:
        now = time.perf_counter()
        self.first = now if self.first is None else self.first
        self.times.append(now)
        self.count += 1
        return self.rate

    @property
    def rate(self) -> float:
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return (len(self.times) - 1) / span if span > 0 else 0.0

    @property
    def mean_rate(self) -> float:
        span = self.times[-1] - self.first if self.count > 1 else 0.0
        return (self.count - 1) / span if span > 0 else 0.0


class VideoSink:
    """Writes frames to a video at `fps`; with fps None (a live camera) to a temporary file, re-timed at the end
    to the measured rate so that the video plays in real time."""

    def __init__(self, path: Path, fps: float | None) -> None:
        self.path, self.fps = Path(path), fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.target = self.path if fps else self.path.with_name(self.path.stem + ".part.avi")
        self.writer: cv2.VideoWriter | None = None

    @staticmethod
    def _open(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
        fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            raise OSError(f"cannot write video {path} ({fourcc})")
        return writer

    def write(self, frame_bgr: np.ndarray) -> None:
        if self.writer is None:
            self.writer = self._open(self.target, self.fps or 30.0, (frame_bgr.shape[1], frame_bgr.shape[0]))
        self.writer.write(frame_bgr)

    def close(self, measured_fps: float) -> None:
        if self.writer is None:
            return
        self.writer.release()
        if self.target != self.path:  # live camera: copy the frames at the measured rate
            writer = None
            for _, frame in iter_video_frames(self.target):
                writer = writer or self._open(self.path, max(measured_fps, 0.1), (frame.shape[1], frame.shape[0]))
                writer.write(frame)
            if writer is not None:
                writer.release()
            self.target.unlink()
        logger.info("saved %s at %.2f fps", self.path, self.fps or measured_fps)


def ensure_display() -> None:
    """Fail early, with the way out, when this OpenCV build cannot open windows (opencv-python-headless)."""
    try:
        cv2.namedWindow("DynaBOA")
    except cv2.error as err:
        raise RuntimeError("this OpenCV build has no GUI support (the pinned opencv-python-headless): run with "
                           "--no-display --save-video out.mp4, or install opencv-python in its place") from err


def handle_key(key: int, adaptor: Adaptor) -> bool:
    """React to a key code: `q` stops (returns False), `r` resets the adaptation to the base model."""
    if key == ord("q"):
        return False
    if key == ord("r"):
        adaptor.reset()
        logger.info("reset to the base model")
    return True


# --- per frame ------------------------------------------------------------------------------------------------------


class Session:
    """Detector, adaptor, renderer and the optional frozen base model for one run."""

    def __init__(self, cfg: WebcamConfig, adaptor: Adaptor, img_res: int, device: torch.device) -> None:
        from utils.render import Renderer

        self.cfg, self.adaptor, self.img_res, self.device = cfg, adaptor, img_res, device
        self.detector = PoseDetector(DetectorConfig(), video=True)
        self.renderer = Renderer(64, 64)
        self.base = copy.deepcopy(adaptor.model).eval().requires_grad_(False) if cfg.test_basemodel else None
        self.track, self.seen = 0, False  # track id of the person; whether the previous frame had one

    def close(self) -> None:
        self.detector.close()
        self.renderer.close()

    def process(self, rgb: np.ndarray, stats: RunStats) -> list[np.ndarray]:
        """Adapt on one RGB frame; returns the panels [keypoints, adapted mesh(, base model)] as RGB images."""
        person = largest_person(self.detector(rgb))
        panels = [rgb.copy() for _ in range(3 if self.base is not None else 2)]
        if person is None:  # shown as it is; the next person starts a new track (fresh motion history)
            stats.no_person += 1
            self.track += self.seen
            self.seen = False
            cv2.putText(panels[0], "no person", (10, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 0, 0), 2)
            return panels
        self.seen = True
        boxes = keypoint_box(person.keypoints[None], scale_factor=1.2)  # SPIN's box of the confident joints
        center, scale = boxes[0][0], float(boxes[1][0])
        kp49 = binarize_confidence(to_j49(person.keypoints[None], "mediapipe33"))[0]
        crop, kp = person_crop(rgb, center, scale, kp49, self.img_res)
        image, keypoints = crop[None].to(self.device), torch.from_numpy(kp)[None]
        res = self.adaptor.step(Frame(image, keypoints.to(self.device), self.track))
        stats.updated += res.updated
        panels[0] = draw_keypoints(rgb, person.keypoints)
        panels[1] = self._overlay(rgb, res.output.pred_cam, res.vertices, center, scale, ADAPTED_COLOR)
        if self.base is not None:
            with torch.no_grad():
                out = self.base(image)
                verts = self.adaptor.smpl(**out.smpl_params()).vertices
            panels[2] = self._overlay(rgb, out.pred_cam, verts, center, scale, BASE_COLOR)
        return panels

    def _overlay(self, rgb: np.ndarray, cam: torch.Tensor, vertices: torch.Tensor, center: np.ndarray, scale: float,
                 color: tuple[int, int, int]) -> np.ndarray:
        """The mesh [1, 6890, 3] drawn over the frame by the full-image camera (crop camera converted, D.4)."""
        height, width = rgb.shape[:2]
        t, focal = full_image_camera(cam.detach().cpu().double(), center, scale, (width, height), self.cfg.focal_length)
        placed = vertices[0].detach().cpu().double().numpy() + t[0].numpy()
        return overlay_people(self.renderer, rgb, [placed], self.adaptor.smpl.faces, focal, [color])


def run(cfg: WebcamConfig, adapt: WebcamAdaptConfig) -> RunStats:
    """The capture -> adapt -> show/save loop; returns what was done."""
    paths = DataPaths.from_root(cfg.data_root)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    adaptor, img_res = build_adaptor(adapt, paths, device, cfg.model_file, cfg.img_res, seed=cfg.seed)
    session, meter, stats = Session(cfg, adaptor, img_res, device), RateMeter(), RunStats()
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
            if not present(panels, meter.tick(), sink, cfg.display, adaptor, stats):
                break
            if cfg.max_frames and stats.frames >= cfg.max_frames:
                break
    finally:
        if frames is not None:
            frames.close()
        session.close()
        stats.fps = meter.mean_rate
        if sink is not None:
            sink.close(stats.fps)
        if cfg.display:
            cv2.destroyAllWindows()
    logger.info("%d frames at %.2f fps: %d updated, %d without a person", stats.frames, stats.fps, stats.updated,
                stats.no_person)
    return stats


def present(panels: list[np.ndarray], rate: float, sink: VideoSink | None, display: bool, adaptor: Adaptor,
            stats: RunStats) -> bool:
    """Show and save the panels side by side with the processing rate; False when the user quits."""
    shown = np.ascontiguousarray(np.concatenate(panels, axis=1)[:, :, ::-1])
    cv2.putText(shown, f"{rate:.1f} fps", (10, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2)
    if sink is not None:
        sink.write(shown)
    if stats.frames % 30 == 0:
        logger.info("%d frames, %.2f fps, %d updated, %d without a person", stats.frames, rate, stats.updated,
                    stats.no_person)
    if not display:
        return True
    cv2.imshow("DynaBOA", shown)
    return handle_key(cv2.waitKey(1) & 0xFF, adaptor)


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
