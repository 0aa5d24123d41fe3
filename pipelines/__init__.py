"""What runs: the adaptation session over a stream (resume, parallel sequences, cluster), the live webcam path, batches
of videos, base-model training, the speed bench, and the synthetic benchmark with its plans, diagnostics and report.

Imports config, utils, models and datasets; the programs at the top level are thin command lines over it.
"""
import config  # noqa: F401  (the thread environment, before torch loads)
