"""Importing the package (also `python -m utils.<module>`) sets OMP_WAIT_POLICY=PASSIVE unless the user set it, before
torch loads: busy-waiting OpenMP threads collapse on a shared machine."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: busy-waiting threads collapse on shared cores
