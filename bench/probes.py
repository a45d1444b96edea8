"""Phenomenon probes benchmark, measured in one run on this machine (CPU, float32).

1. Recording overhead of each probe at its default schedule, on three training runs:

     MLP        MLP(1, 256, 1) on fourier_1d (256 grid points, frequencies 1, 3, 5), Adam, full
                batch, 5000 steps
     GRU        GRU(3, 64, 3) on flip_flop (T = 40, 3 bits), Adam, fresh batches of 64, 2000 steps
     embedding  two nn.Embedding(p, 32) tables for the tokens a, b, concatenated -> Linear(64, 128)
                -> ReLU -> Linear(128, p) on modular_addition (p = 97, half the pairs), AdamW
                with weight decay 1, full batch (4,704 pairs), 3000 steps

   Each model is trained without probes and with all of its probes (repeats interleaved, so
   that load changes hit both alike; a short warm-up run first). Printed per probe: its
   overhead, the Recorder's time inside the probe over the probe-free time of the same run
   (far less noisy than a difference of wall clocks on a shared machine), the number of calls
   and the cost of one call in training steps; and the wall-clock overhead of all probes
   together beside the sum. ``--separate`` trains once per probe instead and adds each one's
   wall-clock overhead. Target: ≤ 10% per probe.

2. The n-D frequency filter (filtered_error, arXiv 1901.06523) at N = 60,000, d = 784 (MNIST's
   size; synthetic inputs in [0, 1], one-hot targets over 10 classes and one prediction): time,
   and peak resident memory above the level before the call, in a child process whose glibc
   malloc returns freed blocks above 64 KiB to the OS (MALLOC_MMAP_THRESHOLD_) with VmHWM reset
   through /proc/self/clear_refs. Reported beside the size of the inputs (X alone is N·d
   numbers) and of one (chunk, N) kernel block.

Run:  python bench/probes.py [--quick] [--repeats 3] [--threads 1] [--separate] [--skip-filter] [--filter-only]
      --quick: shorter runs (a fifth of the steps) and N = 10,000 for the filter.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

import gdlens as gd
from gdlens.probes import CondensationProbe, FrequencyProbe, NTKProbe, RepresentationProbe, SharpnessProbe


class EmbeddingMLP(nn.Module):
    """Token pairs (N, 2) -> logits (N, p): embed a and b separately, concatenate, one hidden
    ReLU layer."""

    def __init__(self, p: int, d: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.embed_a = nn.Embedding(p, d)
        self.embed_b = nn.Embedding(p, d)
        self.hidden = nn.Linear(2 * d, hidden)
        self.out = nn.Linear(hidden, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.embed_a(x[:, 0]), self.embed_b(x[:, 1])], dim=-1)
        return self.out(torch.relu(self.hidden(h)))


def setups(quick: bool) -> dict[str, dict]:
    """name -> how to build the model, the task, the training settings and the probes."""
    scale = 5 if quick else 1
    return {
        "MLP": {
            "model": lambda: gd.models.MLP(1, 256, 1),
            "task": lambda: gd.tasks.fourier_1d(frequencies=(1, 3, 5), n_points=256),
            "train": {"optimizer": "adam", "lr": 1e-3, "steps": 5000 // scale},
            "probes": ["condensation", "frequency", "sharpness", "ntk", "representation"],
        },
        "GRU": {
            "model": lambda: gd.models.GRU(3, 64, 3),
            "task": lambda: gd.tasks.get("flip_flop", T=40, bits=3, pulse_prob=0.1),
            "train": {"optimizer": "adam", "lr": 3e-3, "steps": 2000 // scale, "batch_size": 64},
            "probes": ["condensation", "sharpness", "ntk", "representation"],
            "probe_kwargs": {"condensation": {"layer": "weight_ih"}},  # a state-space model names its layer
        },
        "embedding": {
            "model": lambda: EmbeddingMLP(97),
            "task": lambda: gd.tasks.modular_addition(p=97, train_fraction=0.5, seed=0),
            "train": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1.0, "steps": 3000 // scale},
            "probes": ["condensation", "sharpness", "ntk", "representation"],
        },
    }


PROBES: dict[str, Callable[[], object]] = {
    "condensation": CondensationProbe,
    "frequency": FrequencyProbe,
    "sharpness": SharpnessProbe,
    "ntk": NTKProbe,
    "representation": RepresentationProbe,
}


def timed_run(setup: dict, probe_names: list[str]) -> tuple[float, dict[str, float], dict[str, int]]:
    """(wall seconds of gd.train, {probe: seconds inside it}, {probe: number of calls})."""
    torch.manual_seed(0)
    model = setup["model"]()
    kwargs = setup.get("probe_kwargs", {})
    probes = [PROBES[name](**kwargs.get(name, {})) for name in probe_names]
    gc.collect()
    t0 = time.perf_counter()
    result = gd.train(model, setup["task"](), probes=probes, progress=False, **setup["train"])
    wall = time.perf_counter() - t0
    calls = {
        name: max((len(v) for k, v in result.history.items() if k.startswith(name + "/")), default=0)
        for name in probe_names
    }
    return wall, dict(result.recorder.seconds), calls


def bench_overhead(args: argparse.Namespace) -> None:
    """Without ``--separate``: per model, a probe-free run and a run with all its probes
    (interleaved, ``repeats`` times each); each probe's overhead is its own time (the Recorder's)
    over the probe-free time of that run, and the wall-clock overhead of all of them together
    is printed beside their sum. With ``--separate``: one run per probe, and its wall-clock
    overhead as well."""
    for model_name, setup in setups(args.quick).items():
        if args.models and model_name not in args.models:
            continue
        steps = setup["train"]["steps"]
        names = setup["probes"]
        configs = [[]] + ([[n] for n in names] if args.separate else [names])
        walls: dict[tuple, list[float]] = {tuple(c): [] for c in configs}
        inside: dict[str, list[float]] = {n: [] for n in names}
        free: dict[str, list[float]] = {n: [] for n in names}
        calls: dict[str, int] = {}
        timed_run(setup | {"train": setup["train"] | {"steps": 20}}, names)  # warm-up: first calls, allocator
        for _ in range(args.repeats):
            for c in configs:
                wall, seconds, n_calls = timed_run(setup, c)
                walls[tuple(c)].append(wall)
                probe_total = sum(seconds.values())
                for name in c:
                    inside[name].append(seconds[name])
                    free[name].append(wall - probe_total)
                    calls[name] = n_calls[name]
        base = statistics.median(walls[()])
        print(f"\n{model_name}: {steps} steps, {base:.2f} s without probes ({1e3 * base / steps:.2f} ms/step); "
              f"medians of {args.repeats}", flush=True)
        header = f"  {'probe':<15}{'schedule':>9}{'calls':>7}{'overhead':>10}{'one call':>16}"
        print(header + (f"{'wall-clock overhead':>22}" if args.separate else ""))
        total = 0.0
        for name in names:
            own = statistics.median(inside[name]) / max(statistics.median(free[name]), 1e-12)
            total += own
            per_call = statistics.median(inside[name]) / max(calls[name], 1) / (base / steps)
            line = (f"  {name:<15}{str(PROBES[name]().schedule):>9}{calls[name]:>7}{100 * own:>9.1f}%"
                    f"{per_call:>10.1f} steps")
            if args.separate:
                line += f"{100 * (statistics.median(walls[(name,)]) / base - 1):>21.1f}%"
            print(line + ("" if own <= 0.10 else "   above 10%"), flush=True)
        if not args.separate:
            together = statistics.median(walls[tuple(names)]) / base - 1
            print(f"  all together: wall-clock overhead {100 * together:.1f}% (sum of the above {100 * total:.1f}%)")


# ---------------------------------------------------------------------- the n-D filter
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1)) / 1024


def filter_child(n: int, d: int, delta: float, dtype: torch.dtype, chunk_size: int) -> dict:
    """Runs in the child process: build the data, reset VmHWM, time one filtered_error call."""
    from gdlens.probes.frequency import filtered_error

    gen = torch.Generator().manual_seed(0)
    X = torch.rand(n, d, generator=gen, dtype=dtype)
    labels = torch.randint(0, 10, (n,), generator=gen)
    target = torch.nn.functional.one_hot(labels, 10).to(dtype)
    pred = target + 0.3 * torch.randn(n, 10, generator=gen, dtype=dtype)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current RSS
        before = _status_mb("VmRSS")
    except OSError:
        before = float("nan")
    t0 = time.perf_counter()
    res = filtered_error(pred, target, X, delta, chunk_size=chunk_size)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM") - before if before == before else float("nan")
    return {"seconds": seconds, "peak_mb": peak, "low": float(res.low), "high": float(res.high)}


def bench_filter(args: argparse.Namespace) -> None:
    n = 10_000 if args.quick else 60_000
    d = 784
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    item = 4 if args.filter_dtype == "float32" else 8
    x_mb = n * d * item / 2**20
    block_mb = args.chunk_size * n * item / 2**20
    # δ: the kernel variance; ‖x_i − x_j‖² ≈ d/6 for uniform inputs, so δ = d/60 keeps the
    # weights of typical neighbours from underflowing
    delta = d / 60.0
    print(f"\nn-D frequency filter (filtered_error): N = {n:,}, d = {d}, {args.filter_dtype}, chunk {args.chunk_size}, "
          f"δ = {delta:.1f}, {torch.get_num_threads()} thread(s)", flush=True)
    cmd = [sys.executable, __file__, "--filter-child", str(n), str(d), str(delta), args.filter_dtype,
           str(args.chunk_size), "--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(f"  time {r['seconds']:.1f} s; peak memory {r['peak_mb']:.0f} MB above the inputs "
          f"(X itself {x_mb:.0f} MB, one kernel block {block_mb:.0f} MB); "
          f"errors low {r['low']:.3f}, high {r['high']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--models", nargs="*", choices=["MLP", "GRU", "embedding"])
    parser.add_argument("--separate", action="store_true", help="one training run per probe (slower)")
    parser.add_argument("--skip-filter", action="store_true")
    parser.add_argument("--filter-only", action="store_true")
    parser.add_argument("--filter-dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--filter-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.filter_child:
        n, d, delta, dtype, chunk = args.filter_child
        print(json.dumps(filter_child(int(n), int(d), float(delta), getattr(torch, dtype), int(chunk))))
        return
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s), float32")
    if not args.filter_only:
        bench_overhead(args)
    if not args.skip_filter:
        bench_filter(args)


if __name__ == "__main__":
    main()
