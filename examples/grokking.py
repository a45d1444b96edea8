"""Grokking: a network fits modular addition long before it generalises, and gdlens measures
the three clocks of the run (arXiv 2606.05863; gdlens.probes.clocks).

    python examples/grokking.py            # p = 23, 2,000 full-batch AdamW steps: about 10 s on one CPU thread
    python examples/grokking.py --full     # p = 97 with the paper-scale defaults: about 6 minutes on one thread

The same from the command line: ``gdlens train grokking``.
"""

from __future__ import annotations

import sys

from gdlens.experiments.grokking import run_grokking

if "--full" in sys.argv:
    result = run_grokking(num_threads=1)  # p = 97, embedding 128, width 512, weight decay 1.0, 4,000 steps
else:  # a small version that groks in 2,000 steps
    result = run_grokking(p=23, train_fraction=0.8, embedding=32, width=128, lr=3e-3, steps=2000, fourier_k=3,
                          num_threads=1)

s = result.summary
print(f"training loss ≤ {s['clocks/eps']:g} at step {s['clocks/fit']}          (fit clock)")
print(f"test accuracy ≥ {s['clocks/threshold']:.0%} at step {s['clocks/generalization']}      (generalisation clock)")
print(f"Σ‖θ‖² within {s['clocks/eps']:.0%} of its final value from step {s['clocks/representation']}"
      "   (representation clock)")
print(f"final accuracy: train {s['metrics/train/accuracy']:.3f}, test {s['metrics/test/accuracy']:.3f}")

steps, ratio = result.series("groups/head_over_embedding/ntk_trace")
print(f"tr K_head / tr K_embedding: {ratio[0]:.1f} at step 0, {ratio[-1]:.1f} at step {steps[-1]}"
      " (the head fits first)")
steps, sparsity = result.series("energy/fourier_sparsity")
print(f"Fourier sparsity of the embeddings: {sparsity[0]:.2f} -> {sparsity[-1]:.2f}")

# grokking: generalisation comes long after the fit
assert s["clocks/generalization"] is not None and s["clocks/generalization"] > 2 * s["clocks/fit"]
