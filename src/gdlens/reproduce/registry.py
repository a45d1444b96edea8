"""The registry of reproductions: what one published result is, and how "it holds" is decided.

An :class:`Entry` is one published figure or table, rerun by gdlens:

* ``name`` (the CLI's ``gdlens reproduce NAME``), ``title`` and ``citation``
  (:class:`Citation`: arXiv id, figure or table, authors);
* ``claims``: the published claims, each a :class:`Claim` = a name, a :class:`Rule` (the
  published value as a number or an inequality, see below), its ``source`` in the paper
  (``"Fig. 2b"``) and a one-line ``description`` of what is measured;
* ``run(size=..., seeds=..., store=..., progress=...) -> Measurements``: trains and measures.
  ``size`` is ``"tiny"`` (tests), ``"small"`` (the default: minutes on 2 CPU cores) or
  ``"paper"`` (a GPU or a long run); ``seeds`` a tuple of ints; ``store`` an open
  :class:`~gdlens.store.Store` to write the runs to (pass it to ``gd.train(store=...)``);
  ``progress`` a ``Callable[[str], None]`` for one-line status messages. It returns
  :class:`Measurements`: for every claim name a :class:`Measured` (value ± standard error,
  usually the mean over seeds and its standard error, :meth:`Measured.from_samples`), plus
  ``data`` (whatever the figure needs: arrays, lists, numbers), the ``run_ids`` it wrote and
  ``settings`` (scalars stated in the report);
* ``figure(measurements) -> matplotlib Figure | None``: the paper's figure redrawn from the
  measurement (import matplotlib inside the function: it is the ``cli`` extra);
* ``sizes``: for each of ``"tiny"``, ``"small"``, ``"paper"`` a one-line description;
  ``default_seeds``: seeds per size; ``small_seconds``: the measured wall time of the small
  size on 2 CPU cores (shown by ``gdlens reproduce --list``);
* ``caveats``: claim name -> text, for a claim that does not hold at the small size, saying at
  which size it does (shown in the report beside the claim). A claim is never loosened so
  that it passes.

Rules (``holds(value, stderr)``; ``z`` standard errors of margin, default 2):

* :class:`Above` ``(bound)``: published "> bound"; holds iff ``value - z·stderr > bound``;
* :class:`Below` ``(bound)``: published "< bound"; holds iff ``value + z·stderr < bound``;
* :class:`Within` ``(lo, hi)``: published "in [lo, hi]"; holds iff both of the above;
* :class:`Near` ``(value, tol)``: a published number with the tolerance the paper's figure
  allows; holds iff ``|measured - value| <= tol + z·stderr``.

A NaN value never holds. A NaN standard error (one seed: no spread to measure) is read as 0,
and the report says "(1 seed)".

Register an entry at import of its module with :func:`register`; the modules listed in
``ENTRY_MODULES`` are imported on the first call of :func:`get` or :func:`entries`.
Example (a module ``gdlens/reproduce/mine.py``, then add ``"gdlens.reproduce.mine"`` to
``ENTRY_MODULES``)::

    from gdlens.reproduce.registry import Above, Citation, Claim, Entry, Measured, Measurements, register

    def _run(size, seeds, store, progress):
        ...  # gd.train(..., store=store, seed=s) for s in seeds
        return Measurements({"rank_drop": Measured.from_samples(drops)}, data={...}, run_ids=[...])

    def _figure(m):
        import matplotlib.pyplot as plt
        ...

    register(Entry(
        name="my-result", title="...", citation=Citation("2507.06381", "Fig. 3", "A. Author et al."),
        claims=(Claim("rank_drop", Above(0.5), "Fig. 3b", "r(P) at step 0 minus at the end"),),
        run=_run, figure=_figure,
        sizes={"tiny": "...", "small": "...", "paper": "..."},
        default_seeds={"tiny": 2, "small": 3, "paper": 5}, small_seconds=60.0))
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gdlens.operators._common import sample_stderr

__all__ = [
    "SIZES", "ENTRY_MODULES", "Rule", "Above", "Below", "Within", "Near", "Claim", "Citation",
    "Measured", "Measurements", "Entry", "register", "get", "entries", "names", "registry_table",
]

SIZES = ("tiny", "small", "paper")

# Modules whose import registers built-in entries (a missing one is skipped).
ENTRY_MODULES = (
    "gdlens.reproduce.xu",
    "gdlens.reproduce.eos",
    "gdlens.reproduce.convergent",
    "gdlens.reproduce.clocks",
    "gdlens.reproduce.spike",
    "gdlens.reproduce.kpflow",
)


def _num(x: float) -> str:
    return f"{x:.4g}"


def _se(stderr: float) -> float:
    return 0.0 if stderr is None or math.isnan(stderr) else float(stderr)


class Rule:
    """How a published value is compared with a measurement (subclasses below; each has a
    ``z``, the margin in standard errors)."""

    z: float

    def holds(self, value: float, stderr: float) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def text(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def published(self) -> float | list[float]:
        """The published value(s) as numbers (for result.json)."""
        raise NotImplementedError  # pragma: no cover


@dataclass(frozen=True)
class Above(Rule):
    """Published "> bound": holds iff value − z·stderr > bound."""

    bound: float
    z: float = 2.0

    def holds(self, value: float, stderr: float) -> bool:
        return not math.isnan(value) and value - self.z * _se(stderr) > self.bound

    def text(self) -> str:
        return f"> {_num(self.bound)}"

    def published(self) -> float:
        return float(self.bound)


@dataclass(frozen=True)
class Below(Rule):
    """Published "< bound": holds iff value + z·stderr < bound."""

    bound: float
    z: float = 2.0

    def holds(self, value: float, stderr: float) -> bool:
        return not math.isnan(value) and value + self.z * _se(stderr) < self.bound

    def text(self) -> str:
        return f"< {_num(self.bound)}"

    def published(self) -> float:
        return float(self.bound)


@dataclass(frozen=True)
class Within(Rule):
    """Published "in [lo, hi]": holds iff value − z·stderr > lo and value + z·stderr < hi."""

    lo: float
    hi: float
    z: float = 2.0

    def holds(self, value: float, stderr: float) -> bool:
        return Above(self.lo, self.z).holds(value, stderr) and Below(self.hi, self.z).holds(value, stderr)

    def text(self) -> str:
        return f"in [{_num(self.lo)}, {_num(self.hi)}]"

    def published(self) -> list[float]:
        return [float(self.lo), float(self.hi)]


@dataclass(frozen=True)
class Near(Rule):
    """A published number with the tolerance its figure allows: holds iff
    |measured − value| ≤ tol + z·stderr."""

    value: float
    tol: float
    z: float = 2.0

    def holds(self, value: float, stderr: float) -> bool:
        return not math.isnan(value) and abs(value - self.value) <= self.tol + self.z * _se(stderr)

    def text(self) -> str:
        return f"≈ {_num(self.value)} (± {_num(self.tol)})"

    def published(self) -> float:
        return float(self.value)


@dataclass(frozen=True)
class Claim:
    """One published claim: ``rule`` holds the published value, ``source`` where the paper
    states it, ``description`` what is measured (with its definition)."""

    name: str
    rule: Rule
    source: str
    description: str = ""

    @property
    def published(self) -> str:
        return self.rule.text()


@dataclass(frozen=True)
class Citation:
    """``arxiv``: the arXiv id; ``where``: figure or table; ``authors``: short author list."""

    arxiv: str
    where: str
    authors: str = ""

    def __str__(self) -> str:
        who = f"{self.authors}, " if self.authors else ""
        return f"{who}arXiv:{self.arxiv}, {self.where}"


@dataclass(frozen=True)
class Measured:
    """A measured value and its standard error (NaN when it has none)."""

    value: float
    stderr: float = math.nan

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> Measured:
        """Mean of ``samples`` (e.g. one per seed) and the standard error of the mean,
        std(ddof=1)/√n (NaN for one sample)."""
        t = torch.as_tensor([float(s) for s in samples], dtype=torch.float64)
        if t.numel() == 0:
            return cls(math.nan, math.nan)
        se = sample_stderr(t)
        return cls(float(t.mean()), math.nan if se is None else se)


@dataclass
class Measurements:
    """What an entry's run returns: ``values`` claim name -> :class:`Measured`; ``data`` what
    the figure needs; ``run_ids`` the runs written to the store; ``settings`` scalars stated
    in the report."""

    values: dict[str, Measured]
    data: dict[str, Any] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


RunFn = Callable[..., Measurements]
FigureFn = Callable[[Measurements], Any]


@dataclass(frozen=True)
class Entry:
    """One reproducible published result (see the module docstring)."""

    name: str
    title: str
    citation: Citation
    claims: tuple[Claim, ...]
    run: RunFn
    figure: FigureFn
    sizes: Mapping[str, str]
    default_seeds: Mapping[str, int]
    small_seconds: float
    caveats: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self) -> None:
        missing = [s for s in SIZES if s not in self.sizes or s not in self.default_seeds]
        if missing:
            raise ValueError(f"entry {self.name!r}: sizes and default_seeds need {', '.join(SIZES)}; "
                             f"missing {', '.join(missing)}")
        names = [c.name for c in self.claims]
        if len(set(names)) != len(names):
            raise ValueError(f"entry {self.name!r}: claim names must be unique, got {names}")
        unknown = set(self.caveats) - set(names)
        if unknown:
            raise ValueError(f"entry {self.name!r}: caveats name unknown claims {sorted(unknown)}")


_REGISTRY: dict[str, Entry] = {}
_LOADED = False


def register(entry: Entry, *, replace: bool = False) -> Entry:
    """Add ``entry`` to the registry (a second entry of the same name is a ValueError unless
    ``replace=True``). Returns the entry."""
    if not isinstance(entry, Entry):
        raise TypeError(f"register needs a gdlens.reproduce.Entry, got {type(entry).__name__}")
    if entry.name in _REGISTRY and not replace and _REGISTRY[entry.name] is not entry:
        raise ValueError(f"a reproduction named {entry.name!r} is already registered; pass replace=True")
    _REGISTRY[entry.name] = entry
    return entry


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in ENTRY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def entries() -> list[Entry]:
    """Every registered entry, by name."""
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def names() -> list[str]:
    return [e.name for e in entries()]


def get(name: str) -> Entry:
    """The entry called ``name``; a ValueError listing the registry when there is none."""
    _load()
    if not isinstance(name, str):
        raise TypeError(f"name must be a string naming a reproduction, got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown reproduction {name!r}; known: {', '.join(sorted(_REGISTRY)) or '(none)'}"
                         " (gdlens reproduce --list)")
    return _REGISTRY[name]


def registry_table() -> tuple[list[str], list[list[Any]]]:
    """The registry as (columns, rows): name, arXiv id, what it reproduces (the entry's title),
    number of claims, small-size wall time (the estimate each entry states, measured on 2 CPU
    cores) — what ``gdlens reproduce --list`` prints, one short line per entry (the full
    citation and the claims are in each report and in ``gd.reproduce.get(name)``)."""
    rows = [[e.name, f"arXiv:{e.citation.arxiv}", e.title, len(e.claims),
             f"~{e.small_seconds:.0f} s" if math.isfinite(e.small_seconds) else "not measured"] for e in entries()]
    return ["name", "paper", "reproduces", "claims", "small size"], rows
