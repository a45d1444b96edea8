"""Plain helpers shared by the probe tests (put on sys.path by ``conftest.py``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable


def assert_declared_keys_recorded(probe, recorded: Iterable[str], *, specs: bool = True) -> None:
    """Every key (or pattern) a panel of ``probe`` draws, and every panel's ``bound``, matches a
    recorded key (``recorded``: the keys without the ``"<probe>/"`` prefix); with ``specs``, so
    does every ``Metric`` the probe declares. A declaration that drifts from what the probe
    records fails here."""
    recorded = set(recorded)
    for panel in probe.panels:
        for key in panel.keys:
            assert fnmatch.filter(recorded, key), (panel.title, key, sorted(recorded))
        assert panel.bound is None or panel.bound in recorded, (panel.title, panel.bound)
    if specs:
        for spec in probe.metric_specs:
            assert fnmatch.filter(recorded, spec.key), (spec.key, sorted(recorded))
