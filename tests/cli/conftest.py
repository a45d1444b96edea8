"""The command-line tests share helpers in ``cli_helpers.py`` beside this file (with pytest's
importlib import mode the test folder is not on sys.path, so put it there), and a module-wide
store of a few runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from cli_helpers import fill_store  # noqa: E402


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[str, dict[str, str]]:
    path = tmp_path_factory.mktemp("cli") / "runs"
    return str(path), fill_store(path)
