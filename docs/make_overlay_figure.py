"""An overlay frame of a real photo: `docs/overlay.jpg`.

    python docs/make_overlay_figure.py --data-root data/synthetic_assets
    python docs/make_overlay_figure.py --data-root /tmp/root --photo me.jpg --steps 20 --out /tmp/overlay.jpg

The photo is treated as a clip of `--steps` identical frames and goes through the webcam program's per-frame path
(`pipelines.live.Session`: MediaPipe keypoints, SPIN box, crop, `Adaptor.step`, mesh drawn by the full-image camera)
with the internet-video settings (bilevel step, dynamic steps, GT-block keypoints, shape prior 2e-4) and Adam lr
`--lr`. Left: the photo with the detected MediaPipe landmarks; right: the adapted mesh after the last frame, with
the landmarks on top. The data root needs `smpl/`, the regressors, the priors and `basemodel.pt`; without the
licensed SMPL model, the procedural body of `datasets.synthetic.body_model` stands in (as in the committed figure).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets.detector import PoseDetector, largest_person
from datasets.overlay import draw_keypoints
from pipelines.live import RunStats, Session, WebcamAdaptConfig, WebcamConfig
from utils.imutils import read_image_rgb
from utils.runtime import resolve_device, seed_everything

DEFAULT_PHOTO = REPO.parent / "shared" / "data" / "real_images" / "lunge_pexels.jpg"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="data root (default: $DYNABOA_DATA or data/)")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="a photo of one person")
    parser.add_argument("--height", type=int, default=500, help="the photo is resized to this height (px)")
    parser.add_argument("--steps", type=int, default=12, help="frames of the repeated photo to adapt on")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (3e-6 suits a trained model)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "overlay.jpg", help="output image")
    return parser.parse_args(argv)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    photo = read_image_rgb(args.photo)
    width = round(photo.shape[1] * args.height / photo.shape[0])
    photo = np.ascontiguousarray(cv2.resize(photo, (width, args.height), interpolation=cv2.INTER_AREA))
    with PoseDetector() as find:
        person = largest_person(find(photo))
    if person is None:
        raise SystemExit(f"no person found in {args.photo}")
    seed_everything(22)
    cfg = WebcamConfig(display=False, data_root=args.data_root, device="cpu")
    adapt = WebcamAdaptConfig(use_boa=True, dynamic_boa=True, keypoint_block="gt", shape_prior_weight=2e-4,
                              lr=args.lr)
    from config import DataPaths
    from pipelines.session import build_adaptor

    adaptor, img_res = build_adaptor(adapt, DataPaths.from_root(args.data_root), resolve_device("cpu"))
    session, stats = Session(cfg, adaptor, img_res, resolve_device("cpu")), RunStats()
    try:
        for _ in range(args.steps):
            panels = session.process(photo, stats)
    finally:
        session.close()
    left = _label(draw_keypoints(photo, person.keypoints), "MediaPipe landmarks")
    right = _label(draw_keypoints(panels[1], person.keypoints), f"adapted mesh, frame {args.steps}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.concatenate([left, right], axis=1)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    logging.info("wrote %s (%d of %d frames updated)", args.out, stats.updated, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
