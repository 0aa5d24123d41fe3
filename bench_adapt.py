"""Per-frame cost of DynaBOA adaptation, as multiples of one plain training step of the same network.

    python bench_adapt.py                                                   # ResNet-50 at 224 px, both schedules
    python bench_adapt.py --backbone resnet18 --img-res 128 --frames 10 --stream-frames 5000

See `pipelines.speed_bench` for what is measured and how.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from config import build_parser, config_from_namespace
from pipelines.speed_bench import BenchConfig, measure, stream_report
from utils.runtime import resolve_device, set_threads


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    """The benchmark options from the command line (and a YAML file of them, `--config`)."""
    parser = build_parser(__doc__.splitlines()[0], [(BenchConfig, "benchmark")])
    ns = parser.parse_args(argv)
    return config_from_namespace(BenchConfig, ns, ns.config)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the cost table (and, with --stream-frames, the memory line of a fresh process)."""
    cfg = parse_args(argv)
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    with tempfile.TemporaryDirectory() as tmp:
        lines = measure(cfg, device, Path(tmp))
    print("\n".join(lines))
    if cfg.stream_frames > 0:
        print(stream_report(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
