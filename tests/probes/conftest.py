"""Shared fixtures of the probe tests; plain helpers live in ``probe_helpers.py`` beside this
file (with pytest's importlib import mode the folder is not on sys.path, so put it there)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each probe test on one intra-op thread, then restore the setting.

    The probes' tests are many small torch calls (Lanczos steps, vmapped Hessian–vector
    products); with two threads per process on a shared machine those calls spend most of
    their time waiting for each other (tens of times slower under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
