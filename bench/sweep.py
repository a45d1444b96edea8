"""Sweep benchmark (issue 9), measured in one run on this machine (CPU, float32).

1. Throughput: configurations × steps per second for E = 16 small MLPs (teacher-student,
   width 32, full batch of 128, Adam), and for E = 16 GRUs (H = 32, memory-pro, minibatches
   of 32, Adam), trained
     sequential  one gd.train after another (no probes, no store), one torch thread
     ensemble    gdlens.sweep.train_ensemble: one vmap'd program over stacked parameters
   Target: ensemble ≥ 4× sequential on CPU.
2. Smoke sweep: 16 configurations (activation × init scale × (width, lr) × 2 seeds) through gd.sweep's local
   process pool (2 workers) into a fresh store, with the default probes. Target: < 120 s on
   2 cores. ``--ensemble`` also times the same sweep with ``ensemble=True``.

Run:  python bench/sweep.py [--members 16] [--steps 300] [--skip-smoke] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

import gdlens as gd
from gdlens.sweep import SweepSpec, normalize_config, sweep, train_ensemble
from gdlens.sweep.runner import build_model

BASE = {
    "task": {"name": "teacher_student", "input_dim": 10, "teacher_width": 4},
    "model": {"name": "mlp", "hidden": 32, "g": 1.0},
    "optimizer": "adam", "lr": 1e-2, "steps": 300, "probes": "none",
}

GRU_BASE = {
    "task": {"name": "memory_pro", "T_fix": 5, "T_stim": 5, "T_delay": 10, "T_resp": 5},
    "model": {"name": "gru", "hidden": 32, "g": 1.0},
    "optimizer": "adam", "lr": 3e-3, "steps": 100, "batch_size": 32, "probes": "none",
}

SMOKE = SweepSpec(
    base=dict(BASE, steps=200, probes="default"),
    grid={"model.activation": ["relu", "tanh"], "model.g": [0.25, 1.0]},
    zip={"model.hidden,lr": [[16, 1e-2], [64, 5e-3]]},
    seeds=2,
    name="smoke",
)


def throughput(members: int, steps: int, base: dict = BASE) -> dict[str, float]:
    configs = [normalize_config(dict(base, steps=steps, seed=s)) for s in range(members)]
    task = gd.tasks.get(**base["task"])
    t0 = time.perf_counter()
    for c in configs:
        gd.train(build_model(c, task), task, optimizer="adam", lr=c["lr"], steps=steps, seed=c["seed"], probes=[],
                 batch_size=c["batch_size"], progress=False)
    sequential = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_ensemble(configs)
    ensemble = time.perf_counter() - t0
    work = members * steps
    return {
        "members": members, "steps": steps,
        "sequential_cfg_steps_per_s": work / sequential, "ensemble_cfg_steps_per_s": work / ensemble,
        "speedup": sequential / ensemble,
    }


def smoke(ensemble: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = sweep(SMOKE, tmp, backend="local", workers=2, ensemble=ensemble)
        seconds = time.perf_counter() - t0
        assert not result.errors, result.errors
        assert result.ran == len(SMOKE) == 16
    return {"configs": 16, "seconds": seconds, "ensemble": ensemble}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-smoke", action="store_true")
    parser.add_argument("--ensemble", action="store_true", help="also time the smoke sweep with ensemble=True")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = {"throughput": throughput(args.members, args.steps),
           "throughput_gru": throughput(args.members, max(args.steps // 3, 1), GRU_BASE)}
    if not args.json:
        for key, what in (("throughput", "MLPs"), ("throughput_gru", "GRUs")):
            t = out[key]
            print(f"{t['members']} {what} × {t['steps']} steps: sequential {t['sequential_cfg_steps_per_s']:.0f} "
                  f"cfg·steps/s, ensemble {t['ensemble_cfg_steps_per_s']:.0f} cfg·steps/s, speedup {t['speedup']:.1f}× "
                  "(target ≥ 4×)")
    if not args.skip_smoke:
        runs = [smoke(False)] + ([smoke(True)] if args.ensemble else [])
        out["smoke"] = runs
        if not args.json:
            for r in runs:
                print(f"smoke sweep: 16 configs in {r['seconds']:.1f} s (ensemble={r['ensemble']}; target < 120 s)")
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
