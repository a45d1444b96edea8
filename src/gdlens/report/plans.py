"""What one probe's report section draws, planned from its declaration (no plotting).

The :class:`~gdlens.train.Recorder` writes each probe's declaration (its ``title``,
``metric_specs`` and ``panels``: :mod:`gdlens.probes.spec`, as plain JSON) into the run summary
under ``"probes"``; this module reads that JSON only (it never imports the probes), so the report
of an old run, or of a run whose probes are not installed, still renders.

:func:`plan_section` turns each declared :class:`Panel` into a :class:`Plan` whose keys are the
declared keys resolved against the recorded names ``"<probe>/<key>"`` (``fnmatch`` patterns,
several matches in natural order: ``eig_G_2`` before ``eig_G_10``; a panel matching nothing is
left out). A key's standard error (``Metric.stderr``) becomes a ±1 s.e. band and is not a curve of
its own; a panel's ``bound`` becomes a dimension line (the key's recorded values, or a number of
the probe's settings). Recorded keys that no panel names go to generic panels ("other recorded
keys") of the same section, except, for a probe that declares panels, keys constant over the
run (:func:`constant_leftovers`: sizes like B, T, H, stated instead); a probe that declares no panels gets only generic panels
(:func:`_fallback_plans`): one per first path segment of its keys (``grad_norm/*``), or per last
segment when the first ones are data splits (``train/loss`` with ``test/loss``), keys of a one-key
segment together, ``<key>_se`` as the band of ``<key>``. Arrays no panel names are drawn on their
own (a matrix, or a vector against its index). :mod:`gdlens.report.panels` draws the plans.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Plan", "MAX_LINES", "natural_key", "match_keys", "section_title", "plan_section", "constant_leftovers",
           "unmatched_keys"]

MAX_LINES = 12


@dataclass
class Plan:
    """One panel to draw; names are full store names (``"kp/rank_K"``).

    Attributes:
        title, kind, ylabel, yscale, ylim: as the declared :class:`~gdlens.probes.spec.Panel`.
        columns: the scalar columns (``lines``, ``spectrum``) or array names (``matrix``) drawn.
        labels: legend label of each column.
        bands: column -> the column holding its standard error.
        bound: ``(label, steps, values)`` of the dimension line, or None.
        declared: True for a panel the probe declared, False for a generic one.
        parts: column -> the text the ``*`` of its (single-star) pattern matched (``bias_hh`` of
            ``grad_norm/*``).
    """

    title: str
    kind: str
    columns: list[str]
    ylabel: str
    yscale: str = "auto"
    ylim: tuple[float | None, float | None] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    bands: dict[str, str] = field(default_factory=dict)
    bound: tuple[str, np.ndarray, np.ndarray] | None = None
    declared: bool = True
    parts: dict[str, str] = field(default_factory=dict)


def natural_key(text: str) -> list:
    """Sort key that orders the digits in ``text`` as numbers (``eig_2`` < ``eig_10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def match_keys(patterns: Sequence[str], keys: Sequence[str]) -> list[str]:
    """The ``keys`` matched by ``patterns`` (``fnmatch``, case-sensitive), in the order of the
    patterns, several matches of one pattern in natural order, each key once."""
    out: list[str] = []
    for pattern in patterns:
        hits = [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
        out += [k for k in sorted(hits, key=natural_key) if k not in out]
    return out


def _stderr_of(metric: Mapping[str, Any], key: str) -> str | None:
    """The s.e. key of ``key`` under ``metric`` (a ``*`` in its ``stderr`` takes the text the
    single ``*`` of a pattern ``key`` matched)."""
    se = metric.get("stderr")
    if not se:
        return None
    pattern = metric["key"]
    if "*" in se and pattern.count("*") == 1:
        head, tail = pattern.split("*")
        if key.startswith(head) and key.endswith(tail):
            return se.replace("*", key[len(head): len(key) - len(tail)])
    return se


def _metric_for(metrics: Sequence[Mapping[str, Any]], key: str) -> Mapping[str, Any] | None:
    """The declared metric of ``key``: an exact key first, else the first pattern matching it."""
    for m in metrics:
        if m.get("key") == key:
            return m
    for m in metrics:
        if fnmatch.fnmatchcase(key, m.get("key", "")):
            return m
    return None


def _label(metric: Mapping[str, Any] | None, key: str) -> str:
    """A curve's legend label: the metric's label for an exact key, else the key (a pattern's
    label would name every match alike)."""
    if metric is not None and metric.get("key") == key and metric.get("label"):
        return str(metric["label"])
    return key


def _bound(name: str, bound: str | None, metrics, settings: Mapping[str, Any],
           specs: Sequence[Mapping[str, Any]]) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The dimension line of key ``bound``: its recorded (steps, values), else a number from the
    probe's settings drawn flat; None when neither exists."""
    if not bound:
        return None
    label = _label(_metric_for(specs, bound), bound)
    col = f"{name}/{bound}"
    if col in getattr(metrics, "columns", ()):
        s = metrics[col]
        keep = np.isfinite(s.to_numpy(dtype=float))
        if keep.any():
            return label, np.asarray(s.index, dtype=float)[keep], s.to_numpy(dtype=float)[keep]
    value = settings.get(bound)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return label, np.array([]), np.array([float(value)])
    return None


_SPLITS = frozenset({"train", "test", "eval", "val", "valid", "validation"})


def _fallback_plans(name: str, keys: Sequence[str], title: str) -> list[Plan]:
    """Generic panels for keys no panel names: grouped by their first path segment
    (``grad_norm/*``), or by their last when the first ones are data splits (``train/loss`` and
    ``test/loss`` in one panel); keys of a one-key group together; at most :data:`MAX_LINES`
    curves a panel; ``<key>_se`` is the band of ``<key>``; a group named ``accuracy`` gets
    ``ylim=(0, 1)``."""
    bands: dict[str, str] = {}
    present = set(keys)
    drawn = []
    for key in sorted(keys, key=natural_key):
        if key.endswith("_se") and key[:-3] in present:
            bands[f"{name}/{key[:-3]}"] = f"{name}/{key}"
        else:
            drawn.append(key)
    heads = {k.split("/", 1)[0] for k in drawn if "/" in k}
    by_leaf = bool(heads) and heads <= _SPLITS
    groups: dict[str, list[tuple[str, str]]] = {}  # group -> (key, its label)
    for key in drawn:
        if "/" not in key:
            groups.setdefault("", []).append((key, key))
        elif by_leaf:
            head, leaf = key.rsplit("/", 1)
            groups.setdefault(leaf, []).append((key, head))
        else:
            head, rest = key.split("/", 1)
            groups.setdefault(head, []).append((key, rest))
    for group in [g for g, ks in groups.items() if g and len(ks) == 1]:
        groups.setdefault("", []).extend((k, k) for k, _ in groups.pop(group))
    if "" in groups:
        groups[""].sort(key=lambda kv: natural_key(kv[0]))
    plans = []
    for group, members in sorted(groups.items(), key=lambda kv: (kv[0] != "", kv[0])):
        for i in range(0, len(members), MAX_LINES):
            part = members[i:i + MAX_LINES]
            cols = [f"{name}/{k}" for k, _ in part]
            where = f"{name}: {group}" if group else name
            plans.append(Plan(
                title=f"{title}: {group}" if group else title, kind="lines", columns=cols,
                ylabel=f"{where} (as recorded)", ylim=(0.0, 1.0) if group.endswith("accuracy") else None,
                labels={c: lab for c, (_, lab) in zip(cols, part)},
                bands={c: bands[c] for c in cols if c in bands}, declared=False))
    return plans


def section_title(name: str, decl: Mapping[str, Any] | None) -> str:
    """A probe section's title: the probe's declared title; for a probe that declared nothing
    (its title is then its class name), its name in words and its class."""
    decl = decl or {}
    title, kind = decl.get("title"), decl.get("type")
    if title and (title != kind or decl.get("panels")):
        return str(title)
    words = name.replace("_", " ").capitalize()
    return f"{words} ({kind})" if kind else words


def _records(name: str, metrics, arrays: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The probe's recorded scalar keys and array keys, without its ``"<name>/"`` prefix."""
    prefix = f"{name}/"
    scalars = [str(c)[len(prefix):] for c in getattr(metrics, "columns", ()) if str(c).startswith(prefix)]
    return scalars, [a[len(prefix):] for a in arrays if a.startswith(prefix)]


def _star_part(patterns: Sequence[str], key: str) -> str | None:
    """What the ``*`` of the first single-star pattern matching ``key`` matched, or None."""
    for pattern in patterns:
        if pattern.count("*") == 1 and fnmatch.fnmatchcase(key, pattern):
            head, tail = pattern.split("*")
            return key[len(head): len(key) - len(tail)]
    return None


def _family_labels(plans: Sequence[Plan]) -> None:
    """Curves of one family across panels share a label, so one colour and one legend entry:
    a column matched by a pattern is labelled by what its ``*`` matched when that text occurs
    in more than one panel (``grad_norm/bias_hh`` and ``ntk_trace/bias_hh`` are both
    ``bias_hh``)."""
    panels_of: dict[str, int] = {}
    for plan in plans:
        for part in set(plan.parts.values()):
            panels_of[part] = panels_of.get(part, 0) + 1
    for plan in plans:
        for col, part in plan.parts.items():
            if panels_of[part] > 1:
                plan.labels[col] = part


def _declared_plans(name: str, decl: Mapping[str, Any], metrics, scalars: Sequence[str],
                    arrs: Sequence[str]) -> tuple[list[Plan], set[str]]:
    """The plans of the declared panels and the keys they use (curves, s.e., bounds)."""
    prefix = f"{name}/"
    specs = list(decl.get("metrics") or ())
    settings = decl.get("settings") or {}
    title = section_title(name, decl)
    plans: list[Plan] = []
    used: set[str] = set()
    for p in decl.get("panels") or ():
        kind = p.get("kind", "lines")
        keys = match_keys(p["keys"], arrs if kind == "matrix" else scalars)
        if not keys:
            continue
        labels, bands, parts = {}, {}, {}
        for key in keys:
            metric = _metric_for(specs, key)
            labels[prefix + key] = _label(metric, key)
            part = _star_part(p["keys"], key)
            if part is not None:
                parts[prefix + key] = part
            se = _stderr_of(metric, key) if metric else None
            if se and se in scalars and kind != "matrix":
                bands[prefix + key] = prefix + se
            if se and (se in scalars or se in arrs):
                used.add(se)
        used.update(keys)
        if p.get("bound"):
            used.add(p["bound"])
        ylim = tuple(p["ylim"]) if p.get("ylim") is not None else None
        plans.append(Plan(p.get("title") or title, kind, [prefix + k for k in keys], p.get("ylabel") or title,
                          p.get("yscale", "auto"), ylim, labels, bands,
                          _bound(name, p.get("bound"), metrics, settings, specs), parts=parts))
    for m in specs:  # a declared s.e. is never a curve of its own, even when no panel draws its key
        for key in match_keys([m["key"]], scalars):
            se = _stderr_of(m, key)
            if se in scalars and key in used:
                used.add(se)
    return plans, used


def constant_leftovers(name: str, decl: Mapping[str, Any] | None, metrics) -> dict[str, float]:
    """The keys of a probe that declares panels which no panel draws and whose finite values are
    all equal (sizes such as B, T, H recorded beside the curves): ``{key: value}``. They are not
    drawn (a flat line says nothing); the report states them, and the Summary lists them."""
    if not decl or not decl.get("panels"):
        return {}
    scalars, arrs = _records(name, metrics, {})
    _, used = _declared_plans(name, decl, metrics, scalars, arrs)
    out = {}
    for key in scalars:
        if key in used:
            continue
        v = metrics[f"{name}/{key}"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if v.size and np.all(v == v[0]):
            out[key] = float(v[0])
    return out


def plan_section(name: str, decl: Mapping[str, Any] | None, metrics, arrays: Mapping[str, Any]) -> list[Plan]:
    """The panels of probe ``name``'s section (see the module docstring). ``decl`` is the
    probe's entry of the summary's ``"probes"`` (None for a run recorded without one),
    ``metrics`` the run's wide metrics frame, ``arrays`` its arrays by name."""
    decl = decl or {}
    prefix = f"{name}/"
    scalars, arrs = _records(name, metrics, arrays)
    plans, used = _declared_plans(name, decl, metrics, scalars, arrs)
    constant = constant_leftovers(name, decl, metrics)
    rest = [k for k in scalars if k not in used and k not in constant]
    if rest:
        plans += _fallback_plans(name, rest, "other recorded keys" if plans else section_title(name, decl))
    for key in arrs:
        if key not in used:
            plans.append(Plan(f"{key} (latest)", "matrix", [prefix + key], f"{prefix}{key} (as recorded)",
                              declared=False))
    _family_labels(plans)
    _unique_labels(plans)
    return plans


def _unique_labels(plans: Sequence[Plan]) -> None:
    """Two curves of one panel never share a legend label (the key is appended). Curves of
    different panels may: one label is one colour and one legend entry for the whole figure
    (``grad_norm/head`` and ``ntk_share/head`` are both "head")."""
    for plan in plans:
        counts: dict[str, int] = {}
        for label in plan.labels.values():
            counts[label] = counts.get(label, 0) + 1
        for col, label in plan.labels.items():
            if counts[label] > 1:
                plan.labels[col] = f"{label} ({col.split('/', 1)[1]})"


def unmatched_keys(decl: Mapping[str, Any], scalars: Sequence[str], arrays: Sequence[str] = ()) -> list[str]:
    """The keys (or patterns) that a declared panel names, and its ``bound`` keys, matching
    nothing recorded: ``scalars`` and ``arrays`` are the probe's recorded keys without its
    prefix. Empty when the declaration and the records agree."""
    settings = decl.get("settings") or {}
    missing = []
    for p in decl.get("panels") or ():
        pool = list(arrays) if p.get("kind") == "matrix" else list(scalars)
        missing += [k for k in p["keys"] if not match_keys([k], pool)]
        bound = p.get("bound")
        if bound and bound not in scalars and bound not in settings:
            missing.append(bound)
    return missing
