"""Where the time of an adapted frame goes, and what each schedule costs per frame against prediction alone.

    python -m pipelines.cost_profile                                    # committed model, then ResNet-50 at 224 px
    python -m pipelines.cost_profile --networks committed --rounds 6 --no-stages

Stage profile: one adapted frame of a schedule (default: the recommended `--preset finetune --lr-scale 3`) through
the live path (`pipelines.live.Session.process`: detector, crop, adaptor, drawing) on a photograph, with every stage
timed exclusively (a stage's time excludes the stages it calls): detector, crop, forward with grad (the update's
batched [frame, exemplar] forward), forward without grad (the prediction), teacher forward, SMPL, losses, backward,
optimiser, teacher EMA, exemplar batch, drawing, and the rest of the adaptor and of the live loop. Without a
photograph only the adaptor's stages are timed, on synthetic crops.

Cost table: per-frame step time of each schedule (paper, fast, finetune, and finetune adapting on every K-th frame:
`pipelines.budget`) as a ratio to prediction alone (`--no-adapt`: the no-grad forward and SMPL), all timed in one
run, round-robin (each round times K_max frames of every schedule), the median over rounds reported: the load of a
shared machine hits every schedule alike. Networks: the committed synthetic base model (ResNet-10 at 128 px, the
benchmark's) and a random ResNet-50 at 224 px (the paper's network); a temporary exemplar cache as in
`pipelines.speed_bench`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from config import POSITIVE, REPO_ROOT, AdaptConfig, build_parser, config_from_namespace, option
from models.adaptor import Adaptor, Runtime
from models.hmr import load_hmr_checkpoint
from pipelines import live
from pipelines.budget import Budget
from pipelines.speed_bench import World, build_world, make_adaptor

COMMITTED = REPO_ROOT / "data" / "synthetic_assets" / "basemodel.pt"
PHOTO = REPO_ROOT.parent / "shared" / "data" / "real_images" / "baseball_flickr.jpg"
# name -> (preset, AdaptConfig overrides): prediction alone, the presets, finetune on every K-th frame
SCHEDULES: dict[str, tuple[str, dict[str, Any]]] = {
    "no adapt": ("finetune", {"adapt": False}), "paper": ("paper", {}),
    "paper, no dynamic step": ("paper", {"optim_steps": 0}), "fast": ("fast", {}), "finetune": ("finetune", {}),
    **{f"finetune K={k}": ("finetune", {"adapt_every": k}) for k in (2, 4, 8)}}


@dataclass
class ProfileConfig:
    """Options of the profile."""

    networks: tuple[str, ...] = option("committed (the synthetic base model) and/or resnet50 (random, 224 px)",
                                       default=("committed", "resnet50"))
    preset: str = option("schedule of the stage profile", default="finetune", choices=("paper", "fast", "finetune"))
    lr_scale: float = option("learning-rate factor of the profiled schedule (does not change its cost)", default=3.0)
    frames: int = option("timed frames of the stage profile (after two warm-up frames)", default=5, check=POSITIVE)
    rounds: int = option("rounds of the cost table (each times 8 frames of every schedule; 0 = skip it)", default=5)
    stages: bool = option("time the stage profile", default=True)
    photo: Path = option("photograph of the live path's stages (detector, crop, drawing)", default=PHOTO)
    threads: int = option("torch threads", default=1)
    seed: int = option("seed of the random weights and frames", default=0)


class StageClock:
    """Exclusive wall seconds per stage: time inside a stage minus the time of the stages it calls."""

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)
        self._children: list[float] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._children.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.times[name] += elapsed - self._children.pop()
            if self._children:
                self._children[-1] += elapsed

    def wrap(self, fn: Callable, name: str) -> Callable:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)

        return timed


class TimedCall:
    """`target` with its calls timed as `name` (attributes are the target's)."""

    def __init__(self, target: Any, clock: StageClock, name: str) -> None:
        self._target, self._call = target, clock.wrap(target.__call__, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


@contextlib.contextmanager
def patched(pairs: Sequence[tuple[Any, str, Any]]) -> Iterator[None]:
    """Set `obj.name = value` for each triple, and restore the old values (or remove instance ones) after."""
    saved = [(obj, name, obj.__dict__.get(name, _MISSING) if hasattr(obj, "__dict__") else _MISSING)
             for obj, name, _ in pairs]
    try:
        for obj, name, value in pairs:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, old in reversed(saved):
            if old is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, old)


_MISSING = object()


def adaptor_stages(adaptor: Adaptor, clock: StageClock) -> list[tuple[Any, str, Any]]:
    """The patches that time the adaptor's stages."""
    w = clock.wrap
    pairs = [(adaptor, "step", w(adaptor.step, "adaptor, other")),
             (adaptor, "_forward", w(adaptor._forward, "forward with grad")),
             (adaptor, "_check_forward", w(adaptor._check_forward, "forward without grad (prediction)")),
             (adaptor, "_teacher_forward", w(adaptor._teacher_forward, "teacher forward")),
             (adaptor, "_level_loss", w(adaptor._level_loss, "losses")),
             (adaptor, "_update_teacher", w(adaptor._update_teacher, "teacher EMA")),
             (adaptor, "smpl", TimedCall(adaptor.smpl, clock, "SMPL")),
             (adaptor.optimizer, "step", w(adaptor.optimizer.step, "optimiser")),
             (torch.Tensor, "backward", w(torch.Tensor.backward, "backward"))]
    if adaptor.exemplars is not None:
        pairs.append((adaptor.exemplars, "retrieve", w(adaptor.exemplars.retrieve, "exemplar batch")))
    return pairs


def live_stages(session: live.Session, clock: StageClock) -> list[tuple[Any, str, Any]]:
    """The patches that time the live path's own stages (`pipelines.live` module functions and the session)."""
    w = clock.wrap
    return [(session, "detector", TimedCall(session.detector, clock, "detector")),
            (live, "keypoint_box", w(live.keypoint_box, "crop")),
            (live, "to_j49", w(live.to_j49, "crop")),
            (live, "person_crop", w(live.person_crop, "crop")),
            (live, "draw_keypoints", w(live.draw_keypoints, "drawing")),
            (session, "_overlay", w(session._overlay, "drawing")),
            (session, "process", w(session.process, "live loop, other"))]


# ----------------------------------------------------------------------------------------------------------------
# Networks and schedules
# ----------------------------------------------------------------------------------------------------------------


def network_world(network: str, root: Path, seed: int, n_frames: int) -> World:
    """The speed benchmark's world (procedural SMPL, random prior, exemplar cache, synthetic crops) for `network`:
    the committed base model at its crop size, or a random ResNet-50 at 224 px."""
    from datasets.checkpoint import input_size

    if network == "committed":
        model = load_hmr_checkpoint(COMMITTED)
        world = build_world(model.backbone, input_size(COMMITTED), root, torch.device("cpu"), seed, n_frames)
        return dataclasses.replace(world, model=model)
    if network != "resnet50":
        raise ValueError(f"unknown network {network!r}: committed or resnet50")
    return build_world("resnet50", 224, root, torch.device("cpu"), seed, n_frames)


def schedule_adaptor(world: World, schedule: str, lr_scale: float = 3.0, **overrides: Any) -> Adaptor:
    """An adaptor of a `SCHEDULES` entry, or of a preset's name, at `lr_scale`."""
    preset, settings = SCHEDULES.get(schedule, (schedule, {}))
    return make_adaptor(world, preset, Runtime(), lr_scale=lr_scale, **settings, **overrides)


def frame_image(width: int = 640, photo: Path = PHOTO) -> np.ndarray | None:
    """The photograph as an RGB frame `width` px wide (a webcam's size), or None when it is absent."""
    import cv2

    bgr = cv2.imread(str(photo)) if Path(photo).is_file() else None
    if bgr is None:
        return None
    height = round(bgr.shape[0] * width / bgr.shape[1])
    return np.ascontiguousarray(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)[:, :, ::-1])


# ----------------------------------------------------------------------------------------------------------------
# Stage profile
# ----------------------------------------------------------------------------------------------------------------


def stage_profile(world: World, cfg: ProfileConfig) -> tuple[dict[str, float], str]:
    """Median exclusive seconds per stage of one adapted frame (`cfg.frames` frames after two warm-up frames) and
    what was profiled: through the live path on the photograph when there is one, else the adaptor on crops."""
    adaptor = schedule_adaptor(world, cfg.preset, cfg.lr_scale, keypoint_block="openpose")
    rgb = frame_image(photo=cfg.photo)
    session = None
    if rgb is not None:
        webcam = live.WebcamConfig(capture_mode="video", display=False)
        session = live.Session(webcam, adaptor, world.frames[0].image.shape[-1], torch.device("cpu"))
    runs: list[dict[str, float]] = []
    try:
        for index in range(cfg.frames + 2):
            clock = StageClock()
            pairs = adaptor_stages(adaptor, clock) + (live_stages(session, clock) if session is not None else [])
            with patched(pairs), clock("total"):
                if session is not None:
                    session.process(rgb, live.RunStats())
                else:
                    adaptor.step(world.frames[adaptor.cfg.interval + index % 4])
            runs.append(dict(clock.times))
    finally:
        if session is not None:
            session.close()
    names = sorted({name for run in runs for name in run})
    profile = {name: statistics.median(run.get(name, 0.0) for run in runs[2:]) for name in names}
    what = "live path on a photograph" if session is not None else "adaptor on synthetic crops (no photograph)"
    return profile, what


def stage_lines(network: str, profile: dict[str, float], what: str, cfg: ProfileConfig) -> list[str]:
    total = sum(v for k, v in profile.items() if k != "total")
    lines = [(f"stage profile, {network}, --preset {cfg.preset} --lr-scale {cfg.lr_scale:g}, {what}, median of "
              f"{cfg.frames} frames: {total:.3f} s per adapted frame"), "", "| stage | seconds | share |", "|---|---|---|"]
    for name, seconds in sorted(profile.items(), key=lambda kv: -kv[1]):
        if name != "total":
            lines.append(f"| {name} | {seconds:.4f} | {100 * seconds / total:.1f} % |")
    return lines + [""]


def drawing_ab(world: World, cfg: ProfileConfig, reps: int = 12) -> str:
    """The live path's drawing of one predicted mesh on the photograph: the whole frame rendered
    (`overlay_people`) against the mesh's window only (`overlay_mesh_window`), alternating, median of `reps`."""
    from datasets.overlay import overlay_mesh_window, overlay_people
    from utils.geometry import full_image_camera

    rgb = frame_image(photo=cfg.photo)
    if rgb is None:
        return "drawing: no photograph"
    adaptor = schedule_adaptor(world, cfg.preset, cfg.lr_scale, keypoint_block="openpose")
    session = live.Session(live.WebcamConfig(capture_mode="video", display=False), adaptor,
                           world.frames[0].image.shape[-1], torch.device("cpu"))
    captured: list[tuple] = []
    with patched([(session, "_overlay", lambda *args: captured.append(args) or rgb)]):
        session.process(rgb, live.RunStats())
    _, cam, vertices, center, scale, color = captured[0]
    t, focal = full_image_camera(cam.detach().double(), center, scale, rgb.shape[1::-1], 0.0)
    placed, faces = vertices[0].detach().double().numpy() + t[0].numpy(), adaptor.smpl.faces
    ways = {"whole frame": lambda: overlay_people(session.renderer, rgb, [placed], faces, focal, [color]),
            "mesh window": lambda: overlay_mesh_window(session.renderer, rgb, placed, faces, focal, color)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(reps + 2):
        for name, draw in ways.items():
            start = time.perf_counter()
            draw()
            times[name].append(time.perf_counter() - start)
    covered = int((ways["whole frame"]() != rgb).any(-1).sum())
    session.close()
    full, window = (statistics.median(v[2:]) for v in times.values())
    return (f"drawing one mesh on a {rgb.shape[1]} x {rgb.shape[0]} frame (mesh on {covered} pixels): whole frame "
            f"{full:.4f} s, mesh window {window:.4f} s (ratio {window / full:.2f}, median of {reps})")


# ----------------------------------------------------------------------------------------------------------------
# Cost table
# ----------------------------------------------------------------------------------------------------------------


def cycle_seconds(adaptor: Adaptor, world: World, start: int, frames: int) -> float:
    """Wall seconds of `frames` consecutive steps from stream index `start` (the budget decides which adapt)."""
    budget = Budget.from_config(adaptor.cfg)
    pool = world.frames[adaptor.cfg.interval:]
    begin = time.perf_counter()
    for index in range(start, start + frames):
        adaptor.step(pool[index % len(pool)], adapt=budget.wants(index))
    return time.perf_counter() - begin


def cost_table(world: World, rounds: int, schedules: Sequence[str] = tuple(SCHEDULES), cycle: int = 8
               ) -> dict[str, list[float]]:
    """Seconds per frame of each schedule in each of `rounds` round-robin rounds of `cycle` frames (after one
    warm-up round)."""
    adaptors = {name: schedule_adaptor(world, name) for name in schedules}
    times: dict[str, list[float]] = {name: [] for name in schedules}
    for round_ in range(rounds + 1):
        for name, adaptor in adaptors.items():
            seconds = cycle_seconds(adaptor, world, round_ * cycle, cycle) / cycle
            if round_:
                times[name].append(seconds)
    return times


def median_ratio(times: dict[str, list[float]], name: str, reference: str) -> float:
    """The median over rounds of `name`'s time over `reference`'s in the same round (nan without `reference`)."""
    if reference not in times:
        return float("nan")
    return statistics.median(a / b for a, b in zip(times[name], times[reference]))


def cost_lines(network: str, times: dict[str, list[float]], rounds: int) -> list[str]:
    lines = [(f"cost per frame, {network}: seconds (median of {rounds} rounds) and ratios (median over rounds of the "
              "ratio within the round; all measured in this one run)"), "",
             "| schedule | seconds / frame | x prediction | x finetune | x paper |", "|---|---|---|---|---|"]
    for name, values in times.items():
        lines.append(f"| {name} | {statistics.median(values):.4f} | {median_ratio(times, name, 'no adapt'):.2f} | "
                     f"{median_ratio(times, name, 'finetune'):.3f} | {median_ratio(times, name, 'paper'):.3f} |")
    return lines + [""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(__doc__.splitlines()[0], [(ProfileConfig, "profile")])
    ns = parser.parse_args(argv)
    cfg = config_from_namespace(ProfileConfig, ns, ns.config)
    torch.set_num_threads(cfg.threads)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f} at start\n")
    for network in cfg.networks:
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(cfg.seed)
            world = network_world(network, Path(tmp), cfg.seed, AdaptConfig().interval + 16)
            if cfg.stages:
                print("\n".join(stage_lines(network, *stage_profile(world, cfg), cfg)), flush=True)
                print(drawing_ab(world, cfg) + "\n", flush=True)
            if cfg.rounds:
                print("\n".join(cost_lines(network, cost_table(world, cfg.rounds), cfg.rounds)), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
