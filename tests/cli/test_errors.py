"""Every error of the ``gdlens`` command, through a subprocess as a user meets it: one line
on stderr, a non-zero exit status, no traceback (``--debug`` shows it). One table of cases."""

from __future__ import annotations

import pytest

from cli_helpers import gdlens

SWEEP_OK = "name: t\nbase:\n  task: {name: teacher_student, input_dim: 2}\n  model: {name: mlp, hidden: 4}\n  steps: 2\n"

# (case id, arguments ({store}, {tmp} and {run} filled in), expected text in the one line, packages made missing)
CASES = [
    ("task-arg-unknown", "train flip_flop --task-arg bogus=1 --steps 2 --store {tmp}/s --no-progress", "bogus", ()),
    ("task-arg-no-equals", "train flip_flop --task-arg T --store {tmp}/s", "KEY=VALUE", ()),
    ("task-arg-bad-value", "train flip_flop --task-arg T=0 --store {tmp}/s --no-progress", "T must be", ()),
    ("task-unknown", "train flipflop", "invalid choice", ()),
    ("model-unknown", "train flip_flop --model resnet50", "invalid choice", ()),
    ("steps-negative", "train flip_flop --steps -3 --store {tmp}/s --no-progress", "steps", ()),
    ("steps-not-a-number", "train flip_flop --steps ten", "invalid int value", ()),
    ("hidden-zero", "train flip_flop --hidden 0 --store {tmp}/s --no-progress", "hidden", ()),
    ("train-store-is-a-file", "train flip_flop --steps 1 --store {tmp}/afile --no-progress", "not a directory", ()),
    ("runs-store-typo", "runs --store {tmp}/typo", "no gdlens store at", ()),
    ("runs-store-is-a-file", "runs --store {tmp}/afile", "not a directory", ()),
    ("runs-foreign-database", "runs --store {tmp}/foreign", "cannot be used as a gdlens store", ()),
    ("runs-bad-status", "runs --store {store} --status complete", "invalid choice", ()),
    ("show-unknown-run", "show nope --store {store}", "no run 'nope'", ()),
    ("show-ambiguous-prefix", "show ab --store {store}", "ambiguous", ()),
    ("show-no-run-given", "show --store {store}", "required: run", ()),
    ("compare-one-run", "compare s1run0 --store {store}", "at least two", ()),
    ("compare-unknown-run", "compare s1run0 nope --store {store}", "no run 'nope'", ()),
    ("rm-unknown-run", "rm nope --store {store}", "no run 'nope'", ()),
    ("rm-live-run", "rm live --store {store}", "is running", ()),
    ("resume-completed", "resume s1run0 --store {store}", "already completed", ()),
    ("resume-live", "resume live --store {store}", "is running", ()),
    ("resume-model-from-python", "resume {run} --store {tmp}/py", "built in Python", ()),
    ("resume-store-typo", "resume abc --store {tmp}/typo", "no gdlens store at", ()),
    ("export-unwritable-output", "export s1run0 -o {tmp}/afile/m.csv --store {store}", "afile", ()),
    ("export-missing-pyarrow", "export s1run0 --format parquet -o {tmp}/m.parquet --store {store}",
     "pip install 'gdlens[analysis]'", ("pyarrow",)),
    ("export-missing-tensorboard", "export s1run0 --format tensorboard -o {tmp}/tb --store {store}",
     "pip install 'gdlens[tensorboard]'", ("tensorboard",)),
    ("report-unwritable-output", "report s1run0 -o {tmp}/afile/r.html --store {store}", "afile", ()),
    ("report-unknown-target", "report nothing --store {store}", "nothing", ()),
    ("sweep-missing-yaml", "sweep {tmp}/missing.yaml --store {tmp}/s", "missing.yaml", ()),
    ("sweep-malformed-yaml", "sweep {tmp}/malformed.yaml --store {tmp}/s", "malformed.yaml", ()),
    ("sweep-missing-dask", "sweep {tmp}/ok.yaml --backend dask --store {tmp}/s", "pip install 'gdlens[dask]'",
     ("dask",)),
    ("report-missing-cli-extra", "report s1run0 -o {tmp}/r.html --store {store}", "pip install 'gdlens[cli]'",
     ("pandas",)),
    ("sweep-missing-cli-extra", "sweep {tmp}/ok.yaml --store {tmp}/s", "pip install 'gdlens[cli]'", ("yaml",)),
    ("demo-negative-steps", "demo --steps -1 --store {tmp}/d --no-progress", "steps", ()),
    ("bench-unknown", "bench no_such_bench", "unknown benchmark", ()),
    ("command-unknown", "trian", "invalid choice", ()),
]


@pytest.fixture(scope="module")
def scene(filled, tmp_path_factory):
    """The filled store, a plain file, a foreign database, YAML files, and a run trained on a
    model built in Python (its config cannot rebuild it)."""
    import torch

    import gdlens as gd

    store, _ = filled
    tmp = tmp_path_factory.mktemp("errors")
    (tmp / "afile").write_text("x")
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "store.sqlite").write_bytes(b"not sqlite " * 200)
    (tmp / "malformed.yaml").write_text("name: t\nbase: {task: [unclosed\n  : :\n")
    (tmp / "ok.yaml").write_text(SWEEP_OK)

    class Stop:
        name, schedule = "stop", gd.probes.Schedule(every=1)

        def compute(self, ctx):
            if ctx.step == 3:
                raise KeyboardInterrupt
            return {}

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        gd.train(torch.nn.Linear(2, 1), gd.tasks.teacher_student(32, input_dim=2, seed=0), steps=5, store=tmp / "py",
                 probes=[Stop()], progress=False)
    (record,) = gd.open_store(tmp / "py").runs(as_frame=False)
    return {"store": store, "tmp": str(tmp), "run": record["id"]}


@pytest.mark.parametrize("name, args, expected, missing", CASES, ids=[c[0] for c in CASES])
def test_every_error_is_one_line_without_a_traceback(scene, name, args, expected, missing):
    argv = args.format(**scene).split()
    done = gdlens(*argv, missing=missing, tmp=scene["tmp"])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, (name, done.stdout)
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("gdlens") and "error:" in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert "allow_pickle" not in done.stderr and "weights_only" not in done.stderr


def test_read_commands_leave_no_store_behind(scene):
    from pathlib import Path

    assert not (Path(scene["tmp"]) / "typo").exists()


def test_debug_shows_the_traceback(scene):
    done = gdlens("--debug", "show", "nope", "--store", scene["store"])
    assert done.returncode != 0 and "Traceback" in done.stderr and "no run 'nope'" in done.stderr
    after = gdlens("show", "nope", "--store", scene["store"], "--debug")
    assert after.returncode != 0 and "Traceback" in after.stderr
