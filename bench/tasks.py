"""Task-generation benchmark: 50,000 flip-flop trials of T = 90, vectorised vs a naive loop,
measured in one run on this machine.

1. ``flip_flop(50_000, T=90, bits=3)``: median of ``--repeats`` calls (after one warm-up),
   split into the random draws (``flip_flop_pulses``) and the targets (``flip_flop_targets``).
2. A naive reference that builds each trial with Python loops over steps and channels, timed
   on ``--naive-trials`` trials and scaled up linearly to 50,000; printed as a ratio.

Target: well under 1 s for step 1 (about 0.1 s on a quiet modern core).
Run:  python bench/tasks.py [--repeats 5] [--naive-trials 500]
Absolute times on a shared 2-core machine are noise; the ratio is the signal.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from gdlens.tasks import flip_flop, flip_flop_pulses, flip_flop_targets

B, T, BITS, P = 50_000, 90, 3, 0.05


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def naive_flip_flop(batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One trial at a time, one step and channel at a time: the loop a first draft would write."""
    gen = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for _ in range(batch_size):
        u = torch.rand(T, BITS, generator=gen).tolist()
        x = [[0.0] * BITS for _ in range(T)]
        y = [[0.0] * BITS for _ in range(T)]
        held = [0.0] * BITS
        for t in range(T):
            for c in range(BITS):
                if u[t][c] < P:
                    x[t][c] = -1.0 if u[t][c] < P / 2 else 1.0
                    held[c] = x[t][c]
                y[t][c] = held[c]
        xs.append(x)
        ys.append(y)
    return torch.tensor(xs), torch.tensor(ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-trials", type=int, default=500)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"flip_flop: {B:,} trials, T = {T}, bits = {BITS}, pulse_prob = {P}")

    whole = median_time(lambda: flip_flop(B, T=T, bits=BITS, pulse_prob=P, seed=0), args.repeats)
    draws = median_time(lambda: flip_flop_pulses(B, T, BITS, P, seed=0), args.repeats)
    pulses = flip_flop_pulses(B, T, BITS, P, seed=0)
    targets = median_time(lambda: flip_flop_targets(pulses), args.repeats)
    print(f"  vectorised flip_flop        {whole:8.3f} s   (median of {args.repeats})")
    print(f"    of which random draws     {draws:8.3f} s")
    print(f"    of which targets          {targets:8.3f} s")

    n = args.naive_trials
    naive = median_time(lambda: naive_flip_flop(n), max(1, args.repeats // 2)) * B / n
    print(f"  naive loop (scaled from {n:,} trials) {naive:8.3f} s")
    print(f"  ratio naive / vectorised    {naive / whole:8.1f}x")
    print(f"  under 1 s: {'yes' if whole < 1.0 else 'NO'}")


if __name__ == "__main__":
    main()
