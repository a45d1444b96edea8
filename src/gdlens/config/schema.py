"""The one configuration schema of a training run, shared by ``gd.train``'s recorded config,
sweep specs (Python and YAML) and the ``gdlens`` command line.

A config is a nested mapping::

    {"task":  {"name": "teacher_student", "input_dim": 5, ...},   # gd.tasks.get(name, **rest)
     "model": {"name": "mlp", "hidden": 32, "g": 1.0, ...},        # gd.models.build(name, ...)
     "optimizer": "adam", "lr": 1e-3, "steps": 200, "batch_size": None, "weight_decay": 0.0,
     "betas": None, "momentum": 0.0, "seed": 0, "probes": "default", "meta": {}}

:func:`normalize` is the canonical form: every key is checked (an unknown one raises
:class:`~gdlens.config.coerce.ConfigError` with a "did you mean" suggestion), every value is
coerced to its type (numbers whatever their spelling, see :mod:`gdlens.config.coerce`), and
every default is filled in, including the defaults of the model's, the task's keyword
arguments (read from their signatures, :mod:`gdlens.config.params`). Two configs describe the
same run exactly when their normal forms are equal, which is what :func:`config_key` hashes
and what a sweep compares to skip a configuration already done. ``meta`` holds your own
labels (free-form plain data, part of the identity). ``model.class`` and ``model.num_params``
are facts ``gd.train`` records about the built model; they are allowed and kept, but a model
built by name is identified by its settings, so :func:`identity` leaves them out.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gdlens.config.coerce import ConfigError, suggest, to_float, to_int, to_str
from gdlens.config.params import Param, fill_and_coerce, signature_params

__all__ = [
    "DEFAULTS", "FIELDS", "ALIASES", "PROBES", "normalize", "normalize_field", "normalize_task", "normalize_model",
    "normalize_probes", "identity", "config_key", "unknown_field_error",
]

DEFAULTS: dict[str, Any] = {
    "optimizer": "adam", "lr": 1e-3, "steps": 200, "batch_size": None, "weight_decay": 0.0, "betas": None,
    "momentum": 0.0, "seed": 0, "probes": "default", "meta": {},
}
FIELDS = ("task", "model", *DEFAULTS)
# names people reach for, mapped to the schema's own (offered as "did you mean")
ALIASES = {"learning_rate": "lr", "num_steps": "steps", "n_steps": "steps", "iterations": "steps",
           "wd": "weight_decay", "opt": "optimizer", "bs": "batch_size", "minibatch": "batch_size"}
PROBES = ("default", "metrics", "param_norm", "rel_change", "hidden", "kp")
MODEL_KEYS = ("name", "hidden", "g", "input_size", "output_size")
RECORDED_MODEL_KEYS = ("class", "num_params")

# model name -> (class, constructor arguments that build() fills from hidden, g and the sizes)
_MODEL_MAPPED = {
    "rnn": ("RNN", ("input_size", "hidden_size", "output_size", "g")),
    "gru": ("GRU", ("input_size", "hidden_size", "output_size", "g")),
    "lstm": ("LSTM", ("input_size", "hidden_size", "output_size", "g")),
    "mlp": ("MLP", ("input_size", "width", "output_size", "init_scale")),
    "embedding_mlp": ("EmbeddingMLP", ("p", "width", "embed_std")),
    "transformer": ("Transformer1L", ("p", "d_model")),
    "deep_linear": ("DeepLinear", ("input_size", "width", "output_size", "init_scale")),
    "lru": ("LRU", ("input_size", "modes", "output_size")),
    "selective_lru": ("SelectiveLRU", ("input_size", "state_size", "output_size")),
    "stacked_lru": ("StackedLRU", ("input_size", "d_model", "output_size")),
    "transformer_stack": ("TransformerStack", ("d_model", "output_size", "input_size")),
}


def unknown_field_error(key: str, where: str = "") -> ConfigError:
    """The error for an unknown top-level key, suggesting the closest field (or alias)."""
    close = difflib.get_close_matches(str(key), [*FIELDS, *ALIASES], n=1, cutoff=0.6)
    hint = f" (did you mean {ALIASES.get(close[0], close[0])!r}?)" if close else ""
    return ConfigError(f"unknown config key {where + str(key)!r}{hint}; the keys are {', '.join(FIELDS)} "
                       "(your own labels go under 'meta')")


def _component_name(value: Any, key: str, choices: Sequence[str]) -> str:
    """The ``name`` of a ``model`` or ``task`` mapping, checked against ``choices``."""
    if not isinstance(value, Mapping) or "name" not in value:
        raise ConfigError(f"config key {key!r} must be a mapping with a 'name' (one of {', '.join(choices)}), "
                          f"got {value!r}")
    name = to_str(value["name"], f"{key}.name")
    if name not in choices:
        raise ConfigError(f"unknown {key} {name!r}{suggest(name, choices)}; the {key}s are {', '.join(choices)}")
    return name


def _model_params(name: str) -> dict[str, Param]:
    import gdlens.models as models

    cls_name, mapped = _MODEL_MAPPED[name]
    return signature_params(getattr(models, cls_name), skip=mapped)


def normalize_model(value: Any) -> dict[str, Any]:
    """``model``: ``name`` (one of ``gd.models.MODELS``), ``hidden`` (int ≥ 1, default 32;
    ``width`` is accepted for it), ``g`` (float, default 1.0), ``input_size``/``output_size``
    (None: read from the task), then the model class's own keyword arguments with their
    defaults; ``class``/``num_params`` are kept when recorded."""
    from gdlens.models import MODELS

    name = _component_name(value, "model", MODELS)
    if "width" in value and "hidden" in value:
        raise ConfigError("config keys 'model.hidden' and 'model.width' are the same setting: give one")
    hidden = to_int(value.get("hidden", value.get("width", 32)), "model.hidden")
    if hidden < 1:
        raise ConfigError(f"config key 'model.hidden' must be at least 1, got {hidden}")
    out: dict[str, Any] = {"name": name, "hidden": hidden, "g": to_float(value.get("g", 1.0), "model.g")}
    for size in ("input_size", "output_size"):
        out[size] = None if value.get(size) is None else to_int(value[size], f"model.{size}")
    reserved = (*MODEL_KEYS, *RECORDED_MODEL_KEYS, "width")
    out.update(fill_and_coerce(value, _model_params(name), "model.", reserved=reserved))
    if "class" in value:
        out["class"] = to_str(value["class"], "model.class")
    if "num_params" in value:
        out["num_params"] = to_int(value["num_params"], "model.num_params")
    return out


def _task_params(name: str) -> dict[str, Param]:
    from gdlens.tasks.registry import SIZE_ARGS, TASKS

    skip = tuple(s for s in ("seed", "dtype", SIZE_ARGS[name]) if s)
    return signature_params(TASKS[name], skip=skip)


def normalize_task(value: Any) -> dict[str, Any]:
    """``task``: ``name`` (one of ``gd.tasks.TASKS``) and the generator's keyword arguments
    (not its size or seed, which the loop sets), with their defaults."""
    from gdlens.tasks.registry import TASKS

    value = {"name": value} if isinstance(value, str) else value
    name = _component_name(value, "task", sorted(TASKS))
    return {"name": name, **fill_and_coerce(value, _task_params(name), "task.", reserved=("name",))}


def _probe_classes() -> dict[str, type]:
    from gdlens.probes import HiddenParticipationProbe, KPProbe, MetricsProbe, ParameterNormProbe, RelativeChangeProbe

    return {"metrics": MetricsProbe, "param_norm": ParameterNormProbe, "rel_change": RelativeChangeProbe,
            "hidden": HiddenParticipationProbe, "kp": KPProbe}


def normalize_probes(value: Any) -> str | list:
    """``probes``: ``"default"`` (the training loop's defaults), ``"none"``, or a list of
    entries, each a name from :data:`PROBES` or ``{"name": ..., **kwargs}`` (kwargs checked
    against the probe's signature); ``"default"`` in a list stands for the default set. An entry
    without kwargs is written as its name."""
    if value in ("default", "none"):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"config key 'probes' must be 'default', 'none' or a list of probes, got {value!r}")
    classes = _probe_classes()
    out: list = []
    for i, entry in enumerate(value):
        kwargs = dict(entry) if isinstance(entry, Mapping) else {"name": entry}
        name = kwargs.pop("name", None)
        if not isinstance(name, str) or name not in PROBES:
            raise ConfigError(f"unknown probe {name!r} at probes[{i}]{suggest(str(name), PROBES)}; "
                              f"the probes are {', '.join(PROBES)}")
        if name == "default" and kwargs:
            raise ConfigError(f"probes[{i}]: 'default' takes no arguments, got {sorted(kwargs)}")
        params = {} if name == "default" else signature_params(classes[name], skip=("name",))
        given = fill_and_coerce(kwargs, params, f"probes[{i}].")
        given = {k: v for k, v in given.items() if k in kwargs}  # probe defaults are the probe's own
        out.append({"name": name, **given} if given else name)
    return out


def _plain(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    raise ConfigError(f"config key {key!r} must be plain data (numbers, strings, lists, mappings), got {value!r}")


def _nonnegative(coerce, key: str):
    def check(value: Any, _key: str = key) -> Any:
        x = coerce(value, _key)
        if x < 0 or (isinstance(x, float) and not math.isfinite(x)):
            raise ConfigError(f"config key {_key!r} must be a finite number ≥ 0, got {value!r}")
        return x
    return check


def _lr(value: Any, key: str = "lr") -> float:
    x = to_float(value, key)
    if not (x > 0 and math.isfinite(x)):
        raise ConfigError(f"config key {key!r} must be a finite number > 0, got {value!r}")
    return x


def _batch_size(value: Any, key: str = "batch_size") -> int | None:
    if value is None:
        return None
    x = to_int(value, key)
    if x < 1:
        raise ConfigError(f"config key {key!r} must be None (full batch) or at least 1, got {value!r}")
    return x


def _betas(value: Any, key: str = "betas") -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"config key {key!r} must be None or two numbers [beta1, beta2], got {value!r}")
    out = [to_float(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if not all(0 <= b < 1 for b in out):
        raise ConfigError(f"config key {key!r} must hold numbers in [0, 1), got {value!r}")
    return out


def _optimizer(value: Any, key: str = "optimizer") -> str:
    from gdlens.train.loop import OPTIMIZERS

    name = to_str(value, key)
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}{suggest(name, OPTIMIZERS)}; choose from {', '.join(OPTIMIZERS)}")
    return name


def _meta(value: Any, key: str = "meta") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {key!r} must be a mapping of your own labels, got {value!r}")
    return _plain(value, key)


_FIELD = {
    "task": lambda v, k="task": normalize_task(v), "model": lambda v, k="model": normalize_model(v),
    "optimizer": _optimizer, "lr": _lr, "steps": _nonnegative(to_int, "steps"), "batch_size": _batch_size,
    "weight_decay": _nonnegative(to_float, "weight_decay"), "betas": _betas,
    "momentum": _nonnegative(to_float, "momentum"), "seed": to_int,
    "probes": lambda v, k="probes": normalize_probes(v), "meta": _meta,
}


def normalize_field(key: str, value: Any) -> Any:
    """One top-level field in its canonical form (``key`` must be one of :data:`FIELDS`)."""
    if key not in _FIELD:
        raise unknown_field_error(key)
    return _FIELD[key](value, key)


def normalize(config: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of ``config`` (see the module docstring); ``task`` and ``model`` are
    required. Raises :class:`ConfigError` naming the offending key."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config is a mapping, got {type(config).__name__}")
    for key in config:
        if key not in _FIELD:
            raise unknown_field_error(key)
    for key in ("task", "model"):
        if key not in config:
            raise ConfigError(f"a config needs {key!r}: {{'name': ..., ...}}")
    out = {key: normalize_field(key, config.get(key, copy.deepcopy(DEFAULTS.get(key)))) for key in FIELDS}
    if out["optimizer"] == "flow" and (out["weight_decay"] or out["momentum"] or out["betas"] is not None):
        raise ConfigError("optimizer 'flow' integrates gradient flow on the loss alone: no weight_decay, momentum "
                          "or betas")
    return out


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised config less the facts recorded about a model built by name
    (``model.class``, ``model.num_params``): what makes two runs the same configuration."""
    out = copy.deepcopy(dict(config))
    model = out.get("model")
    if isinstance(model, dict) and "name" in model:
        out["model"] = {k: v for k, v in model.items() if k not in RECORDED_MODEL_KEYS}
    return out


def config_key(config: Mapping[str, Any]) -> str:
    """The identity of a config as canonical JSON: equal exactly when two configs describe the
    same run, however they were written (raises :class:`ConfigError` for an invalid config)."""
    from gdlens.store.store import canonical_config

    return canonical_config(identity(normalize(config)))
