"""Moved to datasets/builtin_assets.py (issue 14's layers). This alias serves only processes started before the move, whose
functions still import `utils.builtin_assets` lazily; delete it (and its row in tests/test_layers.py) once they have finished."""
import sys

from datasets import builtin_assets as _moved

sys.modules[__name__] = _moved
