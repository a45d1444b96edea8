"""Helpers of the command-line tests: the ``gdlens`` command in a subprocess, and a store
holding a few runs (written in-process, fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FAKE_MISSING = """raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n"""


def gdlens(*args: str, cwd=None, missing: tuple[str, ...] = (), tmp: Path | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m gdlens.cli ARGS``; ``missing`` names packages made unimportable (a
    stand-in module that raises ModuleNotFoundError, first on the path)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if missing:
        shadow = Path(tmp) / "missing-packages"
        shadow.mkdir(exist_ok=True)
        for name in missing:
            (shadow / f"{name}.py").write_text(FAKE_MISSING.format(name=name))
        env["PYTHONPATH"] = os.pathsep.join([str(shadow), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "gdlens.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def fill_store(path: Path) -> dict[str, str]:
    """A store with a sweep of three runs (lr × model.g; one interrupted), a run of no
    sweep, two runs sharing an id prefix, and a run marked running by this (live) process."""
    from gdlens.store import open_store

    store = open_store(path)
    ids = {}
    base = {"task": {"name": "flip_flop", "T": 10}, "model": {"name": "gru", "hidden": 8, "g": 1.0},
            "optimizer": "adam", "steps": 20, "seed": 0, "probes": "default"}
    for i, (lr, g) in enumerate(((0.01, 0.5), (0.01, 2.0), (0.1, 0.5))):
        config = {**base, "lr": lr, "model": {**base["model"], "g": g}}
        run = store.create_run(config, name=f"s1-{i}", sweep="s1", run_id=f"s1run{i}xxxxxxx")
        for step in range(3):
            run.log(step, {"metrics/train/loss": 1.0 / (step + 1 + i), "kp/rank_G": 2.0 + step})
        run.log_array(0, "kp/eig_G", [3.0, 2.0, 1.0])
        if i == 2:
            run.interrupt()
        else:
            run.finish({"final_train_loss": 0.1 * (i + 1), "metrics/test/accuracy": 0.9 - 0.1 * i})
        ids[f"s1-{i}"] = run.id
    lone = store.create_run({**base, "lr": 0.5}, name="lone", run_id="lone00000000")
    lone.finish({"final_train_loss": float("nan")})
    ids["lone"] = lone.id
    for suffix in ("1", "2"):
        store.create_run({"x": int(suffix)}, run_id=f"ab{suffix}0000000000").finish()
    ids["live"] = store.create_run({"x": 3}, name="live", run_id="live00000000").id  # this process: alive
    store.close()
    return ids
