"""Experiments: complete, named runs that reproduce a phenomenon with gdlens' probes.

- :mod:`~gdlens.experiments.grokking`: modular addition with an embedding MLP (or a one-layer
  transformer) under AdamW and strong weight decay, recording the training clocks
  (:mod:`gdlens.probes.clocks`).
"""

from gdlens.experiments import grokking
from gdlens.experiments.grokking import grokking_probes, run_grokking

__all__ = ["grokking", "run_grokking", "grokking_probes"]
