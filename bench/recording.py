"""Recording overhead of the training loop at the default probe schedule, measured in one run:
the same training (GRU on flip-flop) with no probes, with the default probes, and with the
default probes plus the KP probe. Prints the overhead as a fraction of the probe-free time
(target for the default schedule: ≤ 10%).

Run:  python bench/recording.py [--steps 1000] [--hidden 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import gdlens as gd


def timed_run(probes, steps: int, hidden: int) -> float:
    torch.manual_seed(0)
    model = gd.models.GRU(3, hidden, 3)
    task = gd.tasks.get("flip_flop", T=40, bits=3, pulse_prob=0.1)
    t0 = time.perf_counter()
    gd.train(model, task, steps=steps, lr=3e-3, batch_size=64, probes=probes, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = {
        "no probes": lambda: [],
        "default probes": lambda: gd.probes.default_probes(recurrent=True),
        "default + KP probe": lambda: gd.probes.default_probes(recurrent=True) + [gd.probes.KPProbe()],
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):  # interleaved, so that load changes hit every configuration alike
        for name, make in configs.items():
            times[name].append(timed_run(make(), args.steps, args.hidden))
    base = statistics.median(times["no probes"])
    print(f"GRU H={args.hidden} on flip-flop, {args.steps} steps, batch 64, T=40; medians of {args.repeats}")
    for name in configs:
        t = statistics.median(times[name])
        print(f"  {name:<20} {t:7.2f} s   overhead {100 * (t / base - 1):6.1f}%")


if __name__ == "__main__":
    main()
