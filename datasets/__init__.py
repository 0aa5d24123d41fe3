"""Every data source, sink and format: streams, retrieval, detector, evaluation, results, exports, assets,
preprocessing and the synthetic world.

Importing the package (also `python -m datasets.<module>`) imports config first, which sets the thread environment
before torch loads."""
import config  # noqa: F401  (the thread environment, before torch loads)
