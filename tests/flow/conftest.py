"""The flow tests share plain helper functions in ``flow_helpers.py`` beside this file; with
pytest's importlib import mode the test folder is not on sys.path, so put it there."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
