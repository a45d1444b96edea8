"""Sweep specifications: expansion of grid × zip × overrides × seeds, dotted fields, YAML."""

import pytest

from gdlens.sweep import SweepSpec, get_path, set_path

BASE = {"task": {"name": "teacher_student"}, "model": {"name": "mlp", "hidden": 8}, "lr": 0.01}


def test_grid_zip_seeds_count_and_values():
    spec = SweepSpec(
        base=BASE,
        grid={"model.hidden": [8, 16, 32], "model.activation": ["relu", "tanh"]},
        zip={"lr,steps": [[0.1, 10], [0.01, 20]]},
        seeds=3,
    )
    configs = spec.expand()
    assert len(configs) == 3 * 2 * 2 * 3 == len(spec)
    assert {(c["model"]["hidden"], c["model"]["activation"], c["lr"], c["steps"], c["seed"]) for c in configs} == {
        (h, a, lr, st, s) for h in (8, 16, 32) for a in ("relu", "tanh") for lr, st in ((0.1, 10), (0.01, 20))
        for s in range(3)
    }
    assert all(c["task"] == {"name": "teacher_student"} and c["model"]["name"] == "mlp" for c in configs)
    assert BASE["model"] == {"name": "mlp", "hidden": 8}  # the base is not mutated


def test_zip_as_groups_and_explicit_configs():
    spec = SweepSpec(base=BASE, zip=[{"model.g": [0.1, 1.0], "lr": [1e-3, 1e-2]}], configs=[{"steps": 5}, {"steps": 7}],
                     seeds=[4])
    configs = spec.expand()
    assert [(c["model"]["g"], c["lr"], c["steps"], c["seed"]) for c in configs] == [
        (0.1, 1e-3, 5, 4), (0.1, 1e-3, 7, 4), (1.0, 1e-2, 5, 4), (1.0, 1e-2, 7, 4)
    ]


def test_no_axes_gives_the_base():
    assert SweepSpec(base=BASE).expand() == [BASE]


def test_bad_specs():
    with pytest.raises(ValueError):
        SweepSpec(base=BASE, zip={"lr,steps": [[0.1]]}).expand()
    with pytest.raises(ValueError):
        SweepSpec(base=BASE, zip=[{"lr": [1, 2], "steps": [1]}]).expand()
    with pytest.raises(ValueError):
        SweepSpec(base=BASE, grid={"lr": 0.1})
    with pytest.raises(ValueError):
        SweepSpec.from_dict({"base": BASE, "grids": {}})
    with pytest.raises(ValueError):
        SweepSpec(base=BASE, grid={"lr.x": [1]}).expand()


def test_paths():
    c = {}
    set_path(c, "a.b.c", [1])
    assert c == {"a": {"b": {"c": [1]}}} and get_path(c, "a.b.c") == [1] and get_path(c, "a.x", 3) == 3


def test_from_yaml(tmp_path):
    path = tmp_path / "phase.yaml"
    path.write_text(
        "base:\n  task: {name: teacher_student, input_dim: 3}\n  model: {name: mlp, hidden: 8}\n  steps: 5\n"
        "grid:\n  model.g: [0.1, 1.0]\nzip:\n  lr,optimizer: [[0.1, sgd], [0.001, adam]]\nseeds: 2\n"
    )
    spec = SweepSpec.from_yaml(path)
    assert spec.name == "phase"
    configs = spec.expand()
    assert len(configs) == 8
    assert {(c["model"]["g"], c["optimizer"], c["seed"]) for c in configs} == {
        (g, o, s) for g in (0.1, 1.0) for o in ("sgd", "adam") for s in (0, 1)
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(Exception):  # safe_load refuses python tags
        SweepSpec.from_yaml(bad)
