"""The committed example of the animation exports, `docs/example/`: the synthetic demo's adapted track, first seconds.

    make demo                                  # writes exps/synthetic_demo/DynaBOA_smpl_j2d/results.npz
    python docs/make_example_export.py         # -> docs/example/: person_0.glb, person_0.bvh, overlay.mp4, view.html
    python docs/make_example_export.py --run exps/synthetic_demo/DynaBOA_smpl_j2d --seconds 2 --out /tmp/example

The same writers as `python -m datasets.export` (`datasets.animation`, `gltf_export`, `bvh_export`, `viewer`,
`overlay`), on the demo's 3DPW-format run: its frames are the synthetic world's sequence images at the target
domain's 30 fps. The body is the procedural built-in one (the demo's), so the example may be shared.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config import DataPaths
from datasets.animation import body_kind, track_animation
from datasets.bvh_export import write_bvh
from datasets.gltf_export import write_glb
from datasets.overlay import PALETTE, write_overlay_video
from datasets.results import load_results, tracks_of
from datasets.synthetic.domains import WILD
from datasets.viewer import write_viewer
from models.smpl import build_smpl

DEFAULT_RUN = REPO / "exps" / "synthetic_demo" / "DynaBOA_smpl_j2d"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="a finished 3DPW-format run (make demo's)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the example, from the track's start")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "example", help="output folder")
    parser.add_argument("--no-video", action="store_true", help="no overlay.mp4 (it needs offscreen OpenGL)")
    return parser.parse_args(argv)


def portable(record: dict) -> dict:
    """The run's provenance with the repository's absolute path dropped from every path (the example is shared)."""
    prefix = str(REPO) + "/"
    return {k: v.replace(prefix, "") if isinstance(v, str) else v for k, v in record.items()}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    if args.seconds <= 0:
        raise SystemExit(f"--seconds must be positive, got {args.seconds}")
    res = load_results(args.run)
    record = json.loads((args.run / "config.json").read_text())
    paths = DataPaths.from_root(record["run"]["data_root"])
    smpl = build_smpl(paths, "neutral")
    name, rows = min(tracks_of(res).items())
    rows = rows[res["frame_id"][rows] < res["frame_id"][rows[0]] + round(args.seconds * WILD.fps)]
    provenance = {**portable(record.get("provenance", {})), "run": str(args.run.resolve()).replace(str(REPO) + "/", ""),
                  "track": name, "export_body_model": body_kind(smpl), "made_by": "docs/make_example_export.py"}
    args.out.mkdir(parents=True, exist_ok=True)
    anim = track_animation(smpl, res, rows, "person_0", WILD.fps)
    glb = write_glb(args.out / "person_0.glb", anim, PALETTE[0], provenance)
    write_bvh(args.out / "person_0.bvh", anim)
    video = None
    if not args.no_video:
        from utils.render import Renderer

        seq_dir = paths.pw3d_root / Path(str(res["imgname"][rows[0]])).parent
        frames = sorted(seq_dir.glob("image_*.jpg"))[: int(res["frame_id"][rows].max()) + 1]
        with Renderer(64, 64) as renderer:
            write_overlay_video(args.out / "overlay.mp4", frames, res, rows, smpl, {}, WILD.fps, renderer)
        video = "overlay.mp4"
    write_viewer(args.out / "view.html", [anim], [glb], f"DynaBOA example: {name}, {len(rows)} frames", video)
    for path in sorted(args.out.iterdir()):
        print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {path.stat().st_size / 1e6:.2f} MB")
    print(f"{len(rows)} frames, {np.sum(~anim.detected)} held")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
