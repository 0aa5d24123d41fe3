"""Train the GroupNorm HMR base model on Human3.6M-format data, or write the SMPL mean parameters and GMM prior.

    python train_basemodel.py --data-root data/synthetic --run-dir runs/base18 --backbone resnet18 --img-res 128
    python train_basemodel.py --data-root data/synthetic --make-priors --out data/synthetic
    python train_basemodel.py --data-root data/synthetic --evaluate runs/base18/basemodel.pt

The training (losses, validation, checkpoints, resume) is `pipelines.training`; the priors `datasets.preprocess.priors`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from tqdm.contrib.logging import logging_redirect_tqdm

from config import build_parser, config_from_namespace
from datasets.preprocess.priors import make_priors
from pipelines.training import TrainConfig, evaluate, train

logger = logging.getLogger("train_basemodel")


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The training options from the command line (and a YAML file of them, `--config`)."""
    parser = build_parser(__doc__.splitlines()[0], [(TrainConfig, "training")])
    ns = parser.parse_args(argv)
    return config_from_namespace(TrainConfig, ns, ns.config)


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate a checkpoint, write the priors, or train (resuming a run directory that has a checkpoint)."""
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with logging_redirect_tqdm():
        if cfg.evaluate:
            logger.info("%s on held-out source frames: %s", cfg.evaluate, evaluate(cfg))
        elif cfg.make_priors:
            make_priors(cfg.data_root, cfg.out, cfg.prior_max_samples, cfg.seed)
        else:
            train(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
