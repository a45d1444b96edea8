"""One config schema for sweeps (Python and YAML), gd.train and the CLI: typos are errors with a
suggestion, numbers are numbers however written, duplicate YAML keys are errors, and a CLI run
and a sweep run of the same settings are one configuration."""

import pytest

import gdlens as gd
from gdlens.config import ConfigError, config_key, normalize
from gdlens.config.coerce import to_float, to_int
from gdlens.config.yaml_strict import loads_yaml
from gdlens.sweep import SweepSpec, sweep

YAML_BASE = """
name: tiny
base:
  task: {name: teacher_student, input_dim: 3, teacher_width: 2}
  model: {name: mlp, hidden: 4}
  steps: 3
  probes: none
"""
TINY = {"task": {"name": "teacher_student", "input_dim": 3, "teacher_width": 2},
        "model": {"name": "mlp", "hidden": 4}, "steps": 3, "probes": "none"}


def _yaml(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("extra, message", [
    ("  stpes: 10\n", r"unknown config key 'stpes' \(did you mean 'steps'\?\)"),
    ("grid:\n  leraning_rate: [0.01, 0.03]\n", r"unknown config key 'leraning_rate' \(did you mean 'lr'\?\)"),
    ("grid:\n  model.hiden: [4, 8]\n", r"unknown config key 'model.hiden' \(did you mean 'hidden'\?\)"),
    ("grid:\n  task.input_dimm: [2, 3]\n", r"'task.input_dimm' \(did you mean 'input_dim'\?\)"),
    ("grids:\n  lr: [0.01]\n", r"unknown sweep spec key 'grids' \(did you mean 'grid'\?\)"),
    ("  probes: [metric]\n", r"unknown probe 'metric' .*did you mean 'metrics'"),
])
def test_a_yaml_typo_is_an_error_with_a_suggestion_and_nothing_trains(tmp_path, extra, message):
    text = YAML_BASE.replace("  probes: none\n", "") + extra if "probes" in extra else YAML_BASE + extra
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        sweep(path, tmp_path / "store", backend="serial")
    assert not (tmp_path / "store" / "store.sqlite").exists() or gd.open_store(tmp_path / "store").runs().empty


def test_1e_minus_2_and_0_01_are_one_config_and_the_second_sweep_skips(tmp_path):
    assert loads_yaml("lr: 1e-2")["lr"] == 0.01  # YAML 1.1 would give the string '1e-2'
    first = sweep(_yaml(tmp_path, YAML_BASE + "  lr: 1e-2\n", "a.yaml"), tmp_path / "store", backend="serial")
    assert first.ran == 1 and first.configs[0]["lr"] == 0.01
    again = sweep(_yaml(tmp_path, YAML_BASE + "  lr: 0.01\n", "b.yaml"), tmp_path / "store", backend="serial")
    quoted = sweep(_yaml(tmp_path, YAML_BASE + "  lr: '1e-2'\n", "c.yaml"), tmp_path / "store", backend="serial")
    assert (again.ran, again.skipped, quoted.skipped) == (0, 1, 1) and again.run_ids == first.run_ids
    assert config_key({**TINY, "lr": "1e-2", "steps": 3.0}) == config_key({**TINY, "lr": 0.01})


def test_a_duplicated_yaml_key_is_an_error_naming_it_and_its_lines(tmp_path):
    path = _yaml(tmp_path, YAML_BASE + "  steps: 5\n")
    with pytest.raises(ConfigError, match=r"spec.yaml: duplicate key 'steps' at line 8 \(first at line 6\)"):
        SweepSpec.from_yaml(path)
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        loads_yaml("name: a\nname: b\n")


@pytest.mark.parametrize("model, message", [
    ({"name": "mlp", "hidden": "eight"}, r"'model.hidden' must be an integer, got 'eight'"),
    ({"name": "mlp", "hidden": 4.5}, r"'model.hidden' must be an integer, got 4.5"),
    ({"name": "mlp", "hidden": 0}, r"'model.hidden' must be at least 1"),
    ({"name": "mlp", "g": "big"}, r"'model.g' must be a number, got 'big'"),
    ({"name": "mlp", "depth": True}, r"'model.depth' must be an integer, got the boolean True"),
    ({"name": "rnn", "nonlinearity": 3}, r"'model.nonlinearity' must be a string"),
    ({"name": "resnet"}, r"unknown model 'resnet'"),
])
def test_a_wrong_type_is_rejected_naming_the_key(tmp_path, model, message):
    with pytest.raises(ConfigError, match=message):
        sweep([{**TINY, "model": model}], tmp_path / "store", backend="serial")


@pytest.mark.parametrize("key, value, message", [
    ("lr", 0, "finite number > 0"), ("lr", "fast", "must be a number"), ("steps", -1, "≥ 0"),
    ("batch_size", 0, "at least 1"), ("betas", [0.9], "two numbers"), ("optimizer", "adamm", "did you mean 'adam'"),
    ("meta", 3, "mapping of your own labels"), ("probes", "all", "'default', 'none' or a list"),
])
def test_top_level_values_are_checked(key, value, message):
    with pytest.raises(ConfigError, match=message):
        normalize({**TINY, key: value})


@pytest.mark.parametrize("text, expected", [("1e-2", 0.01), ("0.01", 0.01), (1, 1.0), (".5", 0.5), ("1E+3", 1000.0)])
def test_numbers_whatever_their_spelling(text, expected):
    value = to_float(text, "x")
    assert value == expected and type(value) is float


@pytest.mark.parametrize("text, expected", [("10", 10), (10.0, 10), ("1e3", 1000)])
def test_integers_whatever_their_spelling(text, expected):
    assert to_int(text, "x") == expected


def test_the_normal_form_fills_every_default_so_spellings_agree():
    a = normalize({**TINY, "model": {"name": "rnn", "hidden": 4}})
    b = normalize({**TINY, "model": {"name": "rnn", "width": "4", "nonlinearity": "tanh", "g": 1}})
    assert a == b and a["model"]["nonlinearity"] == "tanh" and a["task"]["teacher_seed"] == 0
    assert a["steps"] == 3 and a["lr"] == 1e-3 and a["meta"] == {}


def test_a_cli_run_and_a_sweep_run_of_the_same_settings_are_one_configuration(tmp_path):
    from gdlens.cli import build_parser, main, train_config

    store = str(tmp_path / "runs")
    argv = ["train", "teacher_student", "--model", "mlp", "--hidden", "4", "--steps", "3", "--lr", "0.01",
            "--task-arg", "input_dim=3", "--task-arg", "teacher_width=2", "--store", store, "--no-progress"]
    assert main(argv) == 0
    spec = {"base": {"task": {"name": "teacher_student", "input_dim": 3, "teacher_width": 2},
                     "model": {"name": "mlp", "hidden": 4}, "lr": "1e-2", "steps": 3}, "name": "same"}
    cli_config = train_config(build_parser().parse_args(argv))
    assert cli_config == normalize(SweepSpec.from_dict(spec).expand()[0])
    stored = gd.open_store(store).runs(as_frame=False)[0]["config"]
    assert config_key(stored) == config_key(cli_config) and stored["model"]["class"] == "MLP"
    result = sweep(spec, store, backend="serial")
    assert (result.ran, result.skipped) == (0, 1)


def test_gd_train_records_the_schema_and_refuses_a_config_that_contradicts_it(tmp_path):
    import torch

    model = gd.models.MLP(3, 4, 1)
    task = gd.tasks.get("teacher_student", input_dim=3, teacher_width=2)
    with pytest.raises(ValueError, match=r"config\['lr'\] = 0.1 but the run trains with lr=0.001"):
        gd.train(model, task, steps=1, config={"lr": 0.1}, progress=False)
    with pytest.raises(ValueError, match="did you mean 'steps'"):
        gd.train(model, task, steps=1, config={"stpes": 1}, progress=False)
    torch.manual_seed(0)
    run = gd.train(model, task, steps=2, lr=1, store=tmp_path / "s", progress=False,
                   config={"experiment": "mine", "meta": {"note": "x"}}).run
    assert run.config["lr"] == 1.0 and isinstance(run.config["lr"], float) and run.config["experiment"] == "mine" and run.config["meta"] == {"note": "x"}
    assert run.config["task"]["teacher_seed"] == 0 and run.config["model"] == {"class": "MLP", "num_params": 21}


def test_spec_axes_know_grid_zip_and_seeds():
    spec = SweepSpec(base=TINY, grid={"model.hidden": [4, 8]}, zip={"lr,model.g": [[0.01, 0.5], [0.03, 2.0]]},
                     configs=[{"meta.tag": "a"}, {"meta.tag": "b"}], seeds=2)
    assert [(a.kind, a.keys) for a in spec.axes()] == [
        ("grid", ("model.hidden",)), ("zip", ("lr", "model.g")), ("zip", ("meta.tag",)), ("seed", ("seed",))]


@pytest.mark.parametrize("kwargs, message", [
    ({"grid": ["lr"]}, "'grid' must be a mapping"),
    ({"grid": {"lr": 0.1}}, "non-empty list"),
    ({"grid": {"lr": []}}, "non-empty list"),
    ({"base": [1]}, "'base' must be a mapping"),
    ({"configs": {"lr": 1}}, "'configs' must be a list"),
    ({"configs": [3]}, r"configs\[0\] must be a mapping"),
    ({"seeds": 0}, "at least 1"),
    ({"seeds": "two"}, "'seeds' must be an integer"),
    ({"seeds": [1, 1]}, "distinct seeds"),
    ({"seeds": True}, "the boolean True"),
    ({"name": "a/b"}, "sweep name"),
    ({"name": ""}, "sweep name"),
    ({"zip": "lr"}, "'zip' must be a mapping"),
])
def test_bad_spec_shapes(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SweepSpec(base=TINY, **kwargs) if "base" not in kwargs else SweepSpec(**kwargs)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]\n", "a sweep spec is a mapping"),
    ("base: {a: [1\n", "not valid YAML"),
    ("base:\n  model: {name: mlp, name: rnn}\n", "duplicate key 'name' at line 2"),
])
def test_bad_yaml_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        SweepSpec.from_yaml(_yaml(tmp_path, text))
    with pytest.raises(ConfigError, match="cannot read"):
        SweepSpec.from_yaml(tmp_path / "missing.yaml")


def test_every_registered_model_has_a_schema_entry():
    """Each name of gd.models.MODELS normalises (its constructor's keyword arguments are known)."""
    required = {"stacked_lru": {"modes": 2}, "transformer_stack": {"n_heads": 1, "depth": 1, "seq_len": 3}}
    for name in gd.models.MODELS:
        model = normalize({**TINY, "model": {"name": name, "hidden": 4, **required.get(name, {})}})["model"]
        assert model["name"] == name and model["hidden"] == 4
