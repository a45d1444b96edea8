"""KP-engine benchmark: cost of the KP operators in units of one training step, measured in
one run on this machine (float32, CPU unless --device says otherwise).

For each model (GRU, tanh RNN) and width H at B = 32, T = 50:
  train     one training step: forward + backward of L on the same batch (the unit)
  setup     building the KPFlow snapshot (forward, error, linearisation)
  G·1       one G matvec
  G·20      20 probes in one batched call
  hutch++   Hutch++ trace of G with 30 matvecs
  eigs(K,5) top_eigs(K, 5)
Each time is a median, printed as a ratio to the training step ("t"); the peak resident
memory above the pre-call level (Linux VmHWM, reset before each measurement, taken in a child
process whose allocator returns freed memory) is printed as a ratio to the training step's.

Targets (CPU, H = 256): G·20 ≤ 25 training steps; eigs(K,5) ≤ 100 training steps; peak
memory of a G matvec ≤ 3× a training step's; and --big (H = 1024, T = 200) within 8 GB.

Run:  python bench/kp.py [--widths 64 128 256 512] [--repeats 3] [--big]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import statistics
import time
from collections.abc import Callable

import torch

import gdlens as gd
from gdlens.operators import top_eigs, trace


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1)) / 1024


def peak_memory_mb(fn: Callable[[], object]) -> float:
    """Peak resident memory (MB) above the level before the call (Linux only; NaN elsewhere)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return float("nan")
    before = _status_mb("VmRSS")
    fn()
    return _status_mb("VmHWM") - before


def median_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(kind: str, H: int, B: int, T: int, device: torch.device):
    torch.manual_seed(0)
    I, O = 3, 2
    model = gd.models.GRU(I, H, O) if kind == "GRU" else gd.models.RNN(I, H, O, nonlinearity="tanh")
    model = model.to(device=device, dtype=torch.float32)
    x = torch.randn(B, T, I, device=device)
    target = torch.randn(B, T, O, device=device)
    return model, x, target


def train_step(model, x, target) -> None:
    model.zero_grad(set_to_none=True)
    y, _ = model(x)
    loss = ((y - target) ** 2).sum(-1).sum(-1).mean()
    loss.backward()


def bench_one(
    kind: str, H: int, B: int, T: int, repeats: int, device: torch.device, memory: bool
) -> dict[str, float]:
    """Median seconds of each measurement, or (``memory=True``) its peak memory in MB."""
    model, x, target = build(kind, H, B, T, device)
    shape = (B, T, H)
    results: dict[str, float] = {}

    def measure(name: str, fn: Callable[[], object], reps: int = repeats) -> None:
        results[name] = peak_memory_mb(fn) if memory else median_time(fn, reps, device)

    measure("train", lambda: train_step(model, x, target))
    measure("setup", lambda: gd.KPFlow(model, x, target), max(1, repeats // 2))
    kp = gd.KPFlow(model, x, target)
    G, K = kp.G, kp.K
    v1 = torch.randn(*shape, device=device)
    v20 = torch.randn(20, *shape, device=device)
    measure("G·1", lambda: G @ v1)
    measure("G·20", lambda: G @ v20)
    measure("hutch++", lambda: trace(G, "hutch++", 30, seed=0), max(1, repeats // 2))
    measure("eigs(K,5)", lambda: top_eigs(K, 5, seed=0), max(1, repeats // 2))
    return results


def memory_in_subprocess(kind: str, H: int, args: argparse.Namespace) -> dict[str, float]:
    """Peak memories measured in a child process whose glibc malloc returns every freed block
    above 64 KiB to the OS (MALLOC_MMAP_THRESHOLD_), so that VmHWM tracks live tensors. The
    timings are taken in this process, whose allocator is left alone (mmap per allocation is
    far slower)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, __file__, "--memory-of", kind, str(H), "--batch", str(args.batch),
           "--steps", str(args.steps), "--device", args.device]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_table(kind: str, H: int, times: dict[str, float], mems: dict[str, float]) -> None:
    t_train, m_train = times["train"], max(mems["train"], 1.0)
    cells = [f"train {t_train * 1e3:6.1f} ms {m_train:5.0f} MB"]
    for name in times:
        if name != "train":
            cells.append(f"{name} {times[name] / t_train:6.1f}x t {mems[name] / m_train:5.1f}x mem")
    print(f"{kind:<4} H={H:<4} " + " | ".join(cells), flush=True)


def bench_big(device: torch.device) -> None:
    B, T, H = 32, 200, 1024
    print(f"\n--big: GRU and RNN at B={B}, T={T}, H={H}: peak memory of setup + one G matvec + 20 probes")
    for kind in ("RNN", "GRU"):
        model, x, target = build(kind, H, B, T, device)

        def run() -> None:
            kp = gd.KPFlow(model, x, target)
            kp.G @ torch.randn(B, T, H, device=device)
            kp.G @ torch.randn(20, B, T, H, device=device)

        t0 = time.perf_counter()
        mem = peak_memory_mb(run)
        print(f"  {kind}: peak {mem / 1024:.2f} GB above baseline, {time.perf_counter() - t0:.1f} s (target: within 8 GB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--models", nargs="+", default=["RNN", "GRU"], choices=["RNN", "GRU"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--big", action="store_true", help="also run H=1024, T=200 and report its peak memory")
    parser.add_argument("--memory-of", nargs=2, metavar=("MODEL", "H"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.memory_of:  # child process: print the peak memories as JSON
        kind, H = args.memory_of[0], int(args.memory_of[1])
        print(json.dumps(bench_one(kind, H, args.batch, args.steps, 1, device, memory=True)))
        return
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"B={args.batch}, T={args.steps}, float32; ratios are to one training step\n")
    for kind in args.models:
        for H in args.widths:
            times = bench_one(kind, H, args.batch, args.steps, args.repeats, device, memory=False)
            print_table(kind, H, times, memory_in_subprocess(kind, H, args))
    if args.big:
        bench_big(device)


if __name__ == "__main__":
    main()
