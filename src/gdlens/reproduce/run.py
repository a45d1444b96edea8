"""``gd.reproduce(name, ...)``: run one registry entry, write its runs to the store, its HTML
report and its ``result.json``.

``result.json`` (UTF-8, NaN written as null)::

    {"name": str, "title": str, "citation": {"arxiv", "where", "authors"},
     "size": "tiny"|"small"|"paper", "seeds": [int], "wall_seconds": float,
     "claims": [{"name", "published", "published_text", "source", "description",
                 "measured", "stderr", "holds", "caveat"}],
     "runs": [run id], "settings": {...}, "gdlens_version": str}

``published`` is the published number (a list [lo, hi] for an interval), ``published_text``
the same as written in the report ("> 0.9", "≈ 3 (± 0.5)"); ``measured`` and ``stderr`` the
measurement (``stderr`` null with one seed); ``holds`` the verdict of the claim's rule.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdlens.reproduce.registry import SIZES, Entry, Measurements, get
from gdlens.store import Store, open_store
from gdlens.store.views import jsonable

__all__ = ["reproduce", "ReproduceResult", "DEFAULT_STORE"]

DEFAULT_STORE = "gdlens-runs"


@dataclass
class ReproduceResult:
    """The outcome of :func:`reproduce`: the entry, its measurements, the claims as written to
    result.json, and where the report and the JSON went (None when ``out=None``)."""

    entry: Entry
    size: str
    seeds: tuple[int, ...]
    measurements: Measurements
    claims: list[dict[str, Any]]
    wall_seconds: float
    report_path: Path | None = None
    json_path: Path | None = None

    @property
    def all_hold(self) -> bool:
        return all(c["holds"] for c in self.claims)

    def claim(self, name: str) -> dict[str, Any]:
        for c in self.claims:
            if c["name"] == name:
                return c
        raise KeyError(f"no claim {name!r}; claims: {[c['name'] for c in self.claims]}")

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """The claims as (columns, rows): claim, published, measured ± s.e., verdict."""
        rows = []
        for c in self.claims:
            se = c["stderr"]
            measured = f"{c['measured']:.4g}" + ("" if se != se else f" ± {se:.2g}")
            rows.append([c["name"], c["published_text"], measured, "holds" if c["holds"] else "does not hold"])
        return ["claim", "published", "measured ± s.e.", "verdict"], rows

    def to_json(self) -> dict[str, Any]:
        from gdlens import __version__

        e = self.entry
        return jsonable({
            "name": e.name, "title": e.title,
            "citation": {"arxiv": e.citation.arxiv, "where": e.citation.where, "authors": e.citation.authors},
            "size": self.size, "seeds": list(self.seeds), "wall_seconds": self.wall_seconds,
            "claims": self.claims, "runs": list(self.measurements.run_ids),
            "settings": {k: v for k, v in self.measurements.settings.items()
                         if isinstance(v, (int, float, str, bool)) or v is None},
            "gdlens_version": __version__,
        })


def _seeds(entry: Entry, size: str, seeds: int | Sequence[int] | None) -> tuple[int, ...]:
    if seeds is None:
        return tuple(range(entry.default_seeds[size]))
    if isinstance(seeds, bool):
        raise TypeError("seeds must be a number of seeds or a sequence of ints, got a bool")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        return tuple(range(seeds))
    out = tuple(seeds)
    if not out or not all(isinstance(s, int) and not isinstance(s, bool) for s in out):
        raise TypeError(f"seeds must be a number of seeds or a non-empty sequence of ints, got {seeds!r}")
    return out


def _paths(out: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(out)
    if p.suffix.lower() in (".html", ".htm"):
        return p, p.parent / "result.json"
    return p / "report.html", p / "result.json"


def _stderr_progress(message: str) -> None:
    print(f"[gdlens reproduce] {message}", file=sys.stderr, flush=True)


def reproduce(
    name: str,
    size: str = "small",
    seeds: int | Sequence[int] | None = None,
    store: Store | str | os.PathLike | None = DEFAULT_STORE,
    out: str | os.PathLike | None = None,
    progress: bool | Callable[[str], None] = False,
) -> ReproduceResult:
    """Rerun the published result ``name`` (``gdlens reproduce --list`` lists them).

    Args:
        name: a registry entry (``gd.reproduce.names()``).
        size: ``"small"`` (default: minutes on 2 CPU cores), ``"paper"`` (a GPU or a long run)
            or ``"tiny"`` (the tests' size).
        seeds: a number of seeds (0..N−1) or the seeds themselves; None for the entry's default.
        store: the run store (a path or an open Store) the runs are written to.
        out: a directory (``report.html`` and ``result.json`` in it) or an ``.html`` path (and
            ``result.json`` beside it); None writes neither (the result is returned).
        progress: True for one-line messages on stderr, or a callable taking the message.

    Returns:
        :class:`ReproduceResult`, whose ``claims`` hold the published and measured values and
        the verdicts.
    """
    entry = get(name)
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(map(repr, SIZES))}, got {size!r}")
    seed_tuple = _seeds(entry, size, seeds)
    if store is None:
        raise ValueError("store must be a path or an open gdlens Store (the runs are written there)")
    opened = store if isinstance(store, Store) else open_store(store)
    say = _stderr_progress if progress is True else (progress or (lambda message: None))
    if not callable(say):
        raise TypeError(f"progress must be a bool or a callable taking a message, got {type(progress).__name__}")
    say(f"{entry.name}: size {size}, seeds {list(seed_tuple)}")
    t0 = time.perf_counter()
    m = entry.run(size=size, seeds=seed_tuple, store=opened, progress=say)
    wall = time.perf_counter() - t0
    missing = [c.name for c in entry.claims if c.name not in m.values]
    if missing:
        raise RuntimeError(f"entry {entry.name!r} measured no value for claims {missing}")
    claims = []
    for c in entry.claims:
        v = m.values[c.name]
        claims.append({
            "name": c.name, "published": c.rule.published(), "published_text": c.published,
            "source": c.source, "description": c.description,
            "measured": float(v.value), "stderr": float(v.stderr),
            "holds": bool(c.rule.holds(float(v.value), float(v.stderr))),
            "caveat": entry.caveats.get(c.name, ""),
        })
    result = ReproduceResult(entry, size, seed_tuple, m, claims, wall)
    if out is not None:
        html_path, json_path = _paths(out)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n", encoding="utf-8")
        from gdlens.reproduce.page import render_result

        fig = entry.figure(m)
        html_path.write_text(render_result(result, fig), encoding="utf-8")
        result.report_path, result.json_path = html_path, json_path
        say(f"wrote {html_path} and {json_path}")
    return result
