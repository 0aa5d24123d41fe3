"""Per-frame cost of DynaBOA adaptation, as multiples of one plain training step of the same network (the library
of `bench_adapt.py`).

Random weights, synthetic frames and a temporary exemplar cache (so retrieval is measured; no licensed data). For
each schedule it times the adaptor's own sections (`Runtime(profile=True)`): the bilevel step, each dynamic step
(forced with threshold 0 and `--forced-steps` steps), retrieval, and the schedule with its real stop rule; plus the
reading and cropping of a full-HD JPEG (data loading) and, in the same run, one plain batch-1 training step
(forward, backward, Adam). `--stream-frames N` runs the program's frame loop (`pipelines.session.adapt_stream`) on a
small network for N frames in a fresh process and reports its peak resident memory after 500 and after N frames.
"""
from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import joblib
import numpy as np
import torch

from config import AdaptConfig, DataPaths, option
from datasets.base import StreamItem, crop_item
from datasets.retrieval import CLUSTER_FILE, ExemplarBank, cache_paths
from models.adaptor import Adaptor, Frame, Runtime
from models.hmr import BACKBONES, HMR
from models.presets import PRESETS, apply_preset, scoped_adaptor
from models.prior import MaxMixturePrior
from models.smpl import build_smpl
from utils.runtime import resolve_device, set_threads

EXEMPLARS, CLUSTERS = 256, 8  # size of the temporary exemplar cache
FULL_FRAME = (1080, 1920)  # (H, W) of the JPEG whose reading and cropping is "data loading" (3DPW's frame size)


@dataclass
class BenchConfig:
    """Options of the benchmark."""

    backbone: str = option("HMR backbone", default="resnet50", choices=tuple(BACKBONES))
    img_res: int = option("crop side (px)", default=224)
    preset: str = option("schedules to time (both: every preset)", default="both", choices=(*PRESETS, "both"))
    frames: int = option("timed frames per schedule (after one warm-up frame) and repetitions of the other timings",
                         default=5)
    forced_steps: int = option("dynamic steps forced (threshold 0) to time one dynamic step", default=2)
    device: str = option("auto, cpu or cuda", default="auto")
    bf16: bool = option("bfloat16 autocast of the network", default=False)
    channels_last: bool = option("channels-last memory format", default=False)
    threads: int = option("torch threads (0 = torch's default)", default=0)
    stream_frames: int = option("frames of the memory test (0 = skip it)", default=0)
    stream_backbone: str = option("backbone of the memory test", default="resnet10", choices=tuple(BACKBONES))
    stream_img_res: int = option("crop side of the memory test (px)", default=64)
    seed: int = option("seed of the random weights and frames", default=0)


@dataclass
class World:
    """Everything a synthetic adaptation run needs, in memory and in a temporary folder."""

    model: HMR
    smpl: torch.nn.Module
    prior: MaxMixturePrior
    bank: ExemplarBank
    frames: list[Frame]
    root: Path
    device: torch.device


def write_exemplar_cache(out: Path, img_res: int, feature_dim: int, rng: np.random.Generator) -> Path:
    """A retrieval folder in the layout `ExemplarBank` reads: random unit centres, members, crops and labels."""
    out.mkdir(parents=True, exist_ok=True)
    centres = rng.normal(size=(CLUSTERS, feature_dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    members = [list(range(c, EXEMPLARS, CLUSTERS)) for c in range(CLUSTERS)]
    joblib.dump({"centers": centres, "index": members}, out / CLUSTER_FILE)
    image_file, label_file = cache_paths(out, img_res)
    np.save(image_file, rng.integers(0, 256, (EXEMPLARS, img_res, img_res, 3), dtype=np.uint8))
    keypoints = np.concatenate([rng.uniform(-0.8, 0.8, (EXEMPLARS, 49, 2)), np.ones((EXEMPLARS, 49, 1))], axis=-1)
    keypoints[:, :25] = 0.0  # the OpenPose block of a source exemplar is empty
    joints = np.concatenate([rng.normal(0, 0.3, (EXEMPLARS, 24, 3)), np.ones((EXEMPLARS, 24, 1))], axis=-1)
    np.savez(label_file, imgname=np.array([f"s_{i:04d}.jpg" for i in range(EXEMPLARS)]),
             keypoints=keypoints.astype(np.float32), pose=rng.normal(0, 0.2, (EXEMPLARS, 72)).astype(np.float32),
             betas=np.zeros((EXEMPLARS, 10), np.float32), S=joints.astype(np.float32))
    return out


def synthetic_frames(n: int, img_res: int, seed: int, device: torch.device) -> list[Frame]:
    """`n` frames of one track: random crops and keypoints inside the crop, every joint confident."""
    g = torch.Generator().manual_seed(seed)
    frames = []
    for _ in range(n):
        kp = torch.cat([torch.rand(1, 49, 2, generator=g) * 1.2 - 0.6, torch.ones(1, 49, 1)], -1)
        frames.append(Frame(torch.randn(1, 3, img_res, img_res, generator=g).to(device), kp.to(device), "bench"))
    return frames


def build_world(backbone: str, img_res: int, root: Path, device: torch.device, seed: int, n_frames: int) -> World:
    """Random HMR, the procedural SMPL body, a random 8-component pose prior and an exemplar cache under `root`."""
    from datasets.synthetic.body_model import write_body_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    write_body_model(root, seed=0)
    model = HMR(backbone).to(device)
    smpl = build_smpl(DataPaths.from_root(root), "neutral").to(device)
    prior = MaxMixturePrior(rng.normal(0, 0.1, (8, 69)), np.stack([np.eye(69) * 0.05] * 8), np.full(8, 1 / 8))
    retrieval = write_exemplar_cache(root / "retrieval_res", img_res, model.feature_dim, rng)
    bank = ExemplarBank(retrieval, img_res, device, seed=seed)
    frames = synthetic_frames(n_frames, img_res, seed, device)
    return World(model, smpl, prior.to(device), bank, frames, root, device)


def make_adaptor(world: World, preset: str, runtime: Runtime, **overrides: Any) -> Adaptor:
    """An adaptor on a fresh copy of the network with the preset's scope and settings, history already full."""
    cfg = dataclasses.replace(apply_preset(AdaptConfig(), preset), **overrides)
    adaptor = scoped_adaptor(copy.deepcopy(world.model), world.smpl, cfg, PRESETS[preset].adapted, world.prior,
                             world.bank, runtime)
    adaptor.track_id = world.frames[0].track_id
    adaptor.history.extend(world.frames[:cfg.interval])  # the motion loss is active from the first timed frame
    return adaptor


# ----------------------------------------------------------------------------------------------------------------
# Timers
# ----------------------------------------------------------------------------------------------------------------


def median_seconds(fn: Callable[[], Any], reps: int, device: torch.device) -> float:
    """Median wall time of `fn` over `reps` calls after one warm-up call (CUDA synchronised)."""
    fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_training_step(model: HMR, img_res: int, runtime: Runtime, adam: dict[str, bool] | None
                        ) -> Callable[[], None]:
    """One batch-1 training step of a copy of `model` (forward, a loss on its outputs, backward, Adam), or with
    `adam=None` one forward without grad, under the runtime's precision and memory format."""
    net = copy.deepcopy(model).train()
    device = next(net.parameters()).device
    x = torch.randn(1, 3, img_res, img_res, device=device)
    if runtime.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-6, **adam) if adam is not None else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=runtime.bf16)

    def step() -> None:
        with autocast, torch.set_grad_enabled(optimizer is not None):
            out = net(x)
        if optimizer is not None:
            loss = out.pred_rotmat.float().square().mean() + out.pred_betas.float().square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return step


def network_passes(model: HMR, img_res: int, runtime: Runtime, passes: Sequence[tuple[int, bool]]
                   ) -> Callable[[], None]:
    """The bare network work of a schedule: for each `(batch, grad)` one forward of `batch` crops, followed by a
    backward to every parameter when `grad`; no SMPL, losses, optimiser or bookkeeping. Timing it gives the floor
    under which no implementation of that schedule on this machine can go."""
    net = copy.deepcopy(model).eval()
    device = next(net.parameters()).device
    inputs = {b: torch.randn(b, 3, img_res, img_res, device=device) for b, _ in passes}
    if runtime.channels_last:
        net = net.to(memory_format=torch.channels_last)
        inputs = {b: x.contiguous(memory_format=torch.channels_last) for b, x in inputs.items()}
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=runtime.bf16)

    def run() -> None:
        for batch, grad in passes:
            with autocast, torch.set_grad_enabled(grad):
                out = net(inputs[batch])
            if grad:
                net.zero_grad(set_to_none=True)
                (out.pred_rotmat.float().square().mean() + out.pred_betas.float().square().mean()).backward()

    return run


def adam_and_ema_seconds(model: HMR, reps: int, device: torch.device) -> dict[str, float]:
    """Adam alone over every parameter (random gradients) per implementation, and the teacher EMA, loop vs lerp."""
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out = {}
    for name, kwargs in (("loop", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
        optimizer = torch.optim.Adam(params, lr=1e-6, **kwargs)
        out[f"adam_{name}"] = median_seconds(optimizer.step, reps, device)
    teacher = [p.detach().clone() for p in params]
    student = [p.detach() for p in params]

    def ema_loop() -> None:
        for t, s in zip(teacher, student):
            t.mul_(0.1).add_(s, alpha=0.9)

    out["ema_loop"] = median_seconds(ema_loop, reps, device)
    out["ema_lerp"] = median_seconds(lambda: torch._foreach_lerp_(teacher, student, 0.9), reps, device)
    return out


def data_loading_seconds(root: Path, img_res: int, reps: int, seed: int) -> float:
    """Reading a full-HD JPEG and cropping the person box to `img_res`, as a stream item does."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (FULL_FRAME[0] // 16, FULL_FRAME[1] // 16, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "frame.jpg"), cv2.resize(small, FULL_FRAME[::-1], interpolation=cv2.INTER_CUBIC))
    keypoints = np.concatenate([rng.uniform(800, 1100, (49, 2)), np.ones((49, 1))], axis=1)
    center, scale = np.array([960.0, 540.0]), 4.0
    return median_seconds(lambda: crop_item(root, "frame.jpg", center, scale, keypoints, img_res), reps,
                          torch.device("cpu"))


def run_schedule(world: World, preset: str, runtime: Runtime, frames: int, **overrides: Any) -> list:
    """StepResults of `frames` timed frames (after one warm-up frame) of one schedule."""
    adaptor = make_adaptor(world, preset, runtime, **overrides)
    stream = world.frames[adaptor.cfg.interval: adaptor.cfg.interval + frames + 1]
    return [adaptor.step(frame) for frame in stream][1:]


def median_of(results: list, fn: Callable[[Any], float]) -> float:
    return statistics.median(fn(r) for r in results)


# ----------------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------------


def measure(cfg: BenchConfig, device: torch.device, root: Path) -> list[str]:
    """Every figure of the report, as printable lines."""
    runtime = Runtime(bf16=cfg.bf16, channels_last=cfg.channels_last, profile=True)
    world = build_world(cfg.backbone, cfg.img_res, root, device, cfg.seed, AdaptConfig().interval + cfg.frames + 1)
    reps = max(cfg.frames, 1)
    plain = median_seconds(plain_training_step(world.model, cfg.img_res, runtime, {"fused": True}), reps, device)
    plain_default = median_seconds(plain_training_step(world.model, cfg.img_res, runtime, {}), reps, device)
    forward = median_seconds(plain_training_step(world.model, cfg.img_res, runtime, None), reps, device)
    parts = adam_and_ema_seconds(world.model, reps, device)
    n_params = sum(p.numel() for p in world.model.parameters()) / 1e6
    lines = [
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads, device {device}"
        f"{', bf16 autocast' if cfg.bf16 else ''}{', channels-last' if cfg.channels_last else ''}",
        f"network: HMR {cfg.backbone} at {cfg.img_res} px, {n_params:.1f}M parameters; random weights",
        f"unit = plain training step B=1 (forward, backward, Adam): {plain:.4f} s with fused Adam, "
        f"{plain_default:.4f} s with torch's default Adam; forward B=1 without grad: {forward:.3f} s",
        f"Adam step alone: for-loop {parts['adam_loop'] * 1e3:.0f} ms, foreach {parts['adam_foreach'] * 1e3:.0f} ms, "
        f"fused {parts['adam_fused'] * 1e3:.0f} ms; teacher EMA: loop {parts['ema_loop'] * 1e3:.0f} ms, "
        f"foreach lerp {parts['ema_lerp'] * 1e3:.0f} ms",
        f"{'':<10}{'per frame':<48}{'seconds':>9}{'units':>8}{'units (default Adam)':>22}",
    ]

    def row(schedule: str, what: str, seconds: float) -> None:
        lines.append(f"{schedule:<10}{what:<48}{seconds:>9.3f}{seconds / plain:>8.2f}{seconds / plain_default:>22.2f}")

    row("", "data loading (read a 1920x1080 JPEG, crop)", data_loading_seconds(root, cfg.img_res, reps, cfg.seed))
    lines += schedule_lines(cfg, world, runtime, row, parts["adam_fused"] + parts["ema_lerp"])
    lines.append(f"peak resident memory: {peak_rss_mb():.0f} MB"
                 + (f", CUDA peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MB" if device.type == "cuda" else ""))
    return lines


def schedule_lines(cfg: BenchConfig, world: World, runtime: Runtime, row: Callable[[str, str, float], None],
                   update_seconds: float = 0.0) -> list[str]:
    """Time the chosen schedules: table rows through `row`, the other lines returned. `update_seconds` (one Adam
    step and one teacher EMA) is added to the floors of the bilevel and the dynamic step."""
    lines, totals = [], {}
    reps = max(cfg.frames, 1)
    if cfg.preset in ("paper", "both"):
        k = cfg.forced_steps
        # the paper's batches: lower [frame, exemplar], upper [frame, exemplar, history]; teacher and check B=1
        for what, passes in (("bilevel", [(1, False), (2, True), (3, True), (1, False)]),
                             ("dynamic", [(1, False), (3, True), (1, False)])):
            seconds = median_seconds(network_passes(world.model, cfg.img_res, runtime, passes), reps, world.device)
            row("paper", f"floor of the {what} step (passes, Adam, EMA)", seconds + update_seconds)
            shapes = ", ".join(f"B={b}{' fwd+bwd' if g else ' fwd'}" for b, g in passes)
            lines.append(f"paper   floor of the {what} step = the network passes {shapes}, then Adam and EMA")
        forced = run_schedule(world, "paper", runtime, cfg.frames, cos_sim_threshold=0.0, optim_steps=k)
        real = run_schedule(world, "paper", runtime, cfg.frames)
        row("paper", "bilevel step, no dynamic step", median_of(forced, lambda r: r.profile["step"]))
        row("paper", "each dynamic step", median_of(forced, lambda r: r.profile["dynamic"] / r.dynamic_steps))
        row("paper", f"retrieval ({2 + k} calls, inside the steps above)", median_of(forced,
                                                                                      lambda r: r.profile["retrieval"]))
        row("paper", f"frame with {k} forced dynamic steps", median_of(forced, lambda r: r.profile["total"]))
        mean_k = statistics.mean(r.dynamic_steps for r in real)
        totals["paper"] = median_of(real, lambda r: r.profile["total"])
        row("paper", f"frame, real stop rule (mean {mean_k:.1f} dynamic steps)", totals["paper"])
        lines.append(f"paper   passes: {forced[0].passes} with {k} dynamic steps (random weights: the real rule's "
                     "step count says nothing about trained ones)")
    for name in PRESETS:
        if name == "paper" or cfg.preset not in (name, "both") or PRESETS[name].overrides.get("adapt_every", 1) > 1:
            continue  # a budgeted preset's cost per frame: python -m pipelines.cost_profile
        timed = run_schedule(world, name, runtime, cfg.frames)
        scope = PRESETS[name].adapted
        row(name, f"single-level step ({scope} adapts)", median_of(timed, lambda r: r.profile["step"]))
        totals[name] = median_of(timed, lambda r: r.profile["total"])
        row(name, "frame", totals[name])
        lines.append(f"{name:<10}passes: {timed[0].passes}")
    lines += [f"{name} / paper per frame: {totals[name] / totals['paper']:.2f}" for name in totals
              if name != "paper" and "paper" in totals]
    return lines


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class SyntheticStream(torch.utils.data.Dataset):
    """`n` synthetic stream items (persons of 250 frames, sequences of 1000; 50 distinct crops) that note the peak
    resident memory of the process when the items in `marks` are asked for (after that many frames)."""

    def __init__(self, n: int, img_res: int, marks: Sequence[int]) -> None:
        self.n, self.img_res, self.marks = n, img_res, set(marks)
        self.peaks: dict[int, float] = {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> StreamItem:
        if index in self.marks:
            self.peaks[index] = peak_rss_mb()
        g = torch.Generator().manual_seed(index % 50)
        keypoints = torch.cat([torch.rand(49, 2, generator=g) * 1.2 - 0.6, torch.ones(49, 1)], -1)
        image = torch.randn(3, self.img_res, self.img_res, generator=g)
        return StreamItem(index, image, keypoints, (f"seq_{index // 1000}", index // 250 % 4), f"f{index}.jpg",
                          np.array([960.0, 540.0]), 4.0, FULL_FRAME[::-1], index, {})


def stream_memory(cfg: BenchConfig) -> dict[str, float]:
    """The program's frame loop on `cfg.stream_frames` synthetic frames (paper schedule, results written as a run
    does); meant for a fresh process, so that the peak memory is the loop's own."""
    from datasets.results import RunWriter
    from pipelines.session import RunConfig, adapt_stream

    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    mark = min(500, cfg.stream_frames - 1)
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(cfg.stream_backbone, cfg.stream_img_res, Path(tmp), device, cfg.seed, 0)
        runtime = Runtime(bf16=cfg.bf16, channels_last=cfg.channels_last)
        adaptor = scoped_adaptor(world.model, world.smpl, AdaptConfig(), "all", world.prior, world.bank, runtime)
        stream = SyntheticStream(cfg.stream_frames, cfg.stream_img_res, marks=[mark])
        run = RunConfig(chunk=500, workers=0, max_frames=cfg.stream_frames)
        writer = RunWriter(Path(tmp) / "run", run.chunk)
        start = time.perf_counter()
        adapt_stream(adaptor, stream, writer, None, run, device)
        seconds = (time.perf_counter() - start) / cfg.stream_frames
        writer.finish({})
    return {"mark": mark, "at_mark": stream.peaks[mark], "at_end": peak_rss_mb(), "seconds": seconds}


def stream_report(cfg: BenchConfig) -> str:
    """`stream_memory` in a fresh process (without a progress bar), as one line of the report."""
    os.environ["TQDM_DISABLE"] = "1"  # read by tqdm when imported, i.e. in the fresh process
    try:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            mem = pool.submit(stream_memory, cfg).result()
    finally:
        del os.environ["TQDM_DISABLE"]
    return (f"memory stream test ({cfg.stream_backbone} at {cfg.stream_img_res} px, paper schedule, "
            f"{mem['seconds']:.3f} s/frame): peak resident memory after {mem['mark']} frames {mem['at_mark']:.0f} MB, "
            f"after {cfg.stream_frames} frames {mem['at_end']:.0f} MB (ratio {mem['at_end'] / mem['at_mark']:.3f})")
