"""The live path of `dynaboa_webcam.py` as a library: its options, frame sources (a file, or a camera read by a
thread that keeps only the newest frame), the processing-rate meter, the re-timed video sink, and the per-frame
`Session` (MediaPipe keypoints, SPIN box, crop, `Adaptor.step`, the mesh drawn by the full-image camera), which the
webcam program and `docs/make_overlay_figure.py` share."""
from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from config import POSITIVE, AdaptConfig, option
from datasets.detector import DetectorConfig, PoseDetector, largest_person
from datasets.overlay import draw_keypoints, overlay_mesh_window
from datasets.video_out import open_video
from models.adaptor import Adaptor, Frame
from pipelines.async_adapt import AsyncAdapter, LivePredictor, Staleness
from pipelines.async_process import ProcessAdapter
from pipelines.budget import Budget
from utils.geometry import full_image_camera
from utils.imutils import person_crop
from utils.keypoints import binarize_confidence, keypoint_box, to_j49
from utils.video import iter_video_frames, video_info

logger = logging.getLogger(__name__)
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
    async_adapt: bool = option("adapt beside the prediction, in a background thread: every frame is shown at once "
                               "with the newest adapted weights, and the thread adapts on the newest frames "
                               "(pipelines/async_adapt.py)", default=False)
    adapt_queue: int = option("frames waiting for the adaptation thread at most (--async-adapt); a new frame at a "
                              "full queue drops the oldest", default=2, check=POSITIVE)
    adapt_in: str = option("where --async-adapt adapts: a process of its own (no interpreter lock shared with the "
                           "prediction) or a thread", default="process", choices=("process", "thread"))
    adapt_nice: int = option("niceness added to the adaptation thread (--async-adapt; Linux): on a busy machine the "
                             "prediction gets the cores first", default=0, check=None)
    realtime: bool = option("play a video file at its frame rate, as a camera delivers it: frames not taken in time "
                            "are dropped and the saved video is re-timed to the shown rate", default=False)


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
    """What a session did: frames processed (shown), updates, frames without a person, mean processing rate; with
    --async-adapt also the updates per second, the mean staleness (frames between the frame shown and the newest
    frame adapted on) and the frames dropped from the adaptation queue."""

    frames: int = 0
    updated: int = 0
    no_person: int = 0
    fps: float = 0.0
    updates_per_s: float = 0.0
    staleness: float = 0.0
    adapt_dropped: int = 0


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
        frames = (frame for _, frame in iter_video_frames(cfg.video))
        if cfg.realtime:  # as a camera: the newest frame at the file's pace; re-timed to the measured rate
            return newest_frames(LatestFrame(PacedVideo(frames, info.fps or 30.0)), "video"), None
        return frames, info.fps or 30.0
    capture = cv2.VideoCapture(cfg.camera)
    if not capture.isOpened():
        raise RuntimeError(f"camera {cfg.camera} cannot be opened: check that it is connected and not in use by "
                           "another program, pick another with --camera N, or read a file with --capture-mode video "
                           "--video PATH")
    return newest_frames(LatestFrame(capture), "camera"), None


def newest_frames(latest: LatestFrame, what: str) -> Iterator[np.ndarray]:
    """The frames a `LatestFrame` hands out, until its source ends; it is closed at the end."""
    try:
        while (frame := latest.read()) is not None:
            yield frame
    finally:
        latest.close()
        logger.info("%s: %d frames dropped to keep up", what, latest.dropped)


class PacedVideo:
    """Frames of a file delivered at `fps` from the first read, as a camera would (`read`/`release` of a
    `cv2.VideoCapture`)."""

    def __init__(self, frames: Iterator[np.ndarray], fps: float) -> None:
        self.frames, self.fps, self.count, self.start = frames, fps, 0, None

    def read(self) -> tuple[bool, np.ndarray | None]:
        frame = next(self.frames, None)
        if frame is None:
            return False, None
        self.start = time.perf_counter() if self.start is None else self.start
        time.sleep(max(0.0, self.start + self.count / self.fps - time.perf_counter()))
        self.count += 1
        return True, frame

    def release(self) -> None:
        try:
            self.frames.close()
        except (AttributeError, ValueError):  # not a generator, or still being read by a thread that did not stop
            pass


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
        self.writer = None

    @staticmethod
    def _open(path: Path, fps: float, size: tuple[int, int]):
        """H.264 for .mp4 when PyAV has it (else mp4v), Motion-JPEG for .avi; frames in OpenCV's BGR order."""
        return open_video(path, fps, size, order="bgr")

    def write(self, frame_bgr: np.ndarray) -> None:
        if self.writer is None:
            self.writer = self._open(self.target, self.fps or 30.0, (frame_bgr.shape[1], frame_bgr.shape[0]))
        self.writer.write(frame_bgr)

    def close(self, measured_fps: float) -> None:
        if self.writer is None:
            return
        self.writer.close()
        if self.target != self.path:  # live camera: copy the frames at the measured rate
            writer = None
            for _, frame in iter_video_frames(self.target):
                writer = writer or self._open(self.path, max(measured_fps, 0.1), (frame.shape[1], frame.shape[0]))
                writer.write(frame)
            if writer is not None:
                writer.close()
            self.target.unlink()
        logger.info("saved %s at %.2f fps", self.path, self.fps or measured_fps)


# --- per frame ------------------------------------------------------------------------------------------------------


class Session:
    """Detector, adaptor, renderer and the optional frozen base model for one run; with --async-adapt the
    predictor and the adaptation thread, or the process built by `factory` (picklable: it builds the adaptor
    there)."""

    def __init__(self, cfg: WebcamConfig, adaptor: Adaptor, img_res: int, device: torch.device,
                 factory: Callable[[], Any] | None = None) -> None:
        from utils.render import Renderer

        self.cfg, self.adaptor, self.img_res, self.device = cfg, adaptor, img_res, device
        self.detector = PoseDetector(DetectorConfig(), video=True)
        self.renderer = Renderer(64, 64)
        self.base = copy.deepcopy(adaptor.model).eval().requires_grad_(False) if cfg.test_basemodel else None
        self.track, self.seen = 0, False  # track id of the person; whether the previous frame had one
        self.budget = Budget.from_config(adaptor.cfg)  # --adapt-every, --frame-budget (synchronous path)
        self.adapter = self.predictor = None
        if cfg.async_adapt and adaptor.cfg.adapt:  # the predictor's copy first: the thread then owns the adaptor
            threads = max(1, (os.cpu_count() or 2) // 2)  # half the cores for prediction, half for adaptation
            self.predictor = LivePredictor(adaptor.model, adaptor.smpl)
            if cfg.adapt_in == "process" and factory is not None:
                self.adapter = ProcessAdapter(factory, adaptor.params, cfg.adapt_queue, threads, cfg.adapt_nice)
            else:
                self.adapter = AsyncAdapter(adaptor, cfg.adapt_queue, threads, cfg.adapt_nice)
            self.predictor.board = self.adapter.board
            torch.set_num_threads(threads)
        self.staleness = Staleness()

    def close(self) -> None:
        if self.adapter is not None:
            self.adapter.close()
        self.detector.close()
        self.renderer.close()

    def reset(self) -> None:
        """Back to the base model (key `r`)."""
        (self.adapter or self.adaptor).reset()

    def counters(self, stats: RunStats) -> None:
        """Copy the adaptation thread's counters into `stats` (--async-adapt)."""
        if self.adapter is not None:
            stats.updated, stats.updates_per_s = self.adapter.updates, self.adapter.updates_per_second
            stats.staleness, stats.adapt_dropped = self.staleness.mean, self.adapter.dropped

    def status(self, rate: float) -> str:
        """The line drawn on the frames: shown frames per second (and, asynchronous, updates per second and the
        staleness of the frame shown, in frames)."""
        if self.adapter is None:
            return f"{rate:.1f} fps"
        stale = "-" if self.staleness.last is None else str(self.staleness.last)
        return f"{rate:.1f} fps, {self.adapter.updates_per_second:.1f} upd/s, stale {stale}"

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
        cam, vertices = self._mesh(Frame(image, keypoints.to(self.device), self.track), stats)
        panels[0] = draw_keypoints(rgb, person.keypoints)
        panels[1] = self._overlay(rgb, cam, vertices, center, scale, ADAPTED_COLOR)
        if self.base is not None:
            with torch.no_grad():
                out = self.base(image)
                verts = self.adaptor.smpl(**out.smpl_params()).vertices
            panels[2] = self._overlay(rgb, out.pred_cam, verts, center, scale, BASE_COLOR)
        return panels

    def _mesh(self, frame: Frame, stats: RunStats) -> tuple[torch.Tensor, torch.Tensor]:
        """The crop camera and vertices of the frame: adapted on (when the budget allows), then predicted; or, with
        --async-adapt, predicted at once with the newest published weights and queued for the adaptation thread."""
        if self.adapter is None:
            res = self.adaptor.step(frame, adapt=self.budget.wants(stats.frames))
            stats.updated += res.updated
            return res.output.pred_cam, res.vertices
        self.predictor.refresh()
        out, vertices = self.predictor(frame.image)
        self.staleness.observe(stats.frames, self.predictor.frame)
        self.adapter.submit(frame, stats.frames)
        return out.pred_cam, vertices

    def _overlay(self, rgb: np.ndarray, cam: torch.Tensor, vertices: torch.Tensor, center: np.ndarray, scale: float,
                 color: tuple[int, int, int]) -> np.ndarray:
        """The mesh [1, 6890, 3] drawn over the frame by the full-image camera (crop camera converted, D.4), only
        the window it covers rendered (docs/speed.md: 0.17 -> 0.07-0.12 s on a 640 x 803 frame, same picture)."""
        height, width = rgb.shape[:2]
        t, focal = full_image_camera(cam.detach().cpu().double(), center, scale, (width, height), self.cfg.focal_length)
        placed = vertices[0].detach().cpu().double().numpy() + t[0].numpy()
        return overlay_mesh_window(self.renderer, rgb, placed, self.adaptor.smpl.faces, focal, color)
