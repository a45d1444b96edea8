"""A two-layer transformer groks modular addition; gdlens follows its KP operators across
training: the effective ranks of K and G and each attention head's share of K, with the fit,
representation and generalisation clocks (docs/transformers.md).

    python examples/transformer_grokking.py           # p = 23, 1,500 steps: about 45 s on one CPU thread
    python examples/transformer_grokking.py --full    # p = 31, 3,000 steps: about 2.5 minutes

Writes transformer_grokking.png.
"""

from __future__ import annotations

import sys

from gdlens.experiments.transformer_grokking import transformer_grokking

if "--full" in sys.argv:
    result = transformer_grokking()
else:  # the size of tests/experiments/test_transformer_grokking.py
    result = transformer_grokking(p=23, train_fraction=0.8, steps=1500, kp_every=250, kp_batch=8)

c = result.clocks
print(f"fit clock {c['clocks/fit']}, generalisation clock {c['clocks/generalization']}, "
      f"Fourier representation clock {c['clocks/representation/fourier_sparsity']}")
print(" step  test acc   r(K)          r(G)          heads' share  top head  embedding's share")
for row in result.rows:
    print(f"{row['step']:5d}  {row['test_accuracy']:8.2f}  {row['K']:6.1f} ± {row['K_stderr']:4.1f}  "
          f"{row['G']:6.1f} ± {row['G_stderr']:4.1f}  {row['heads']:12.3f}  {row['top_head']:8.2f}  "
          f"{row['share/embedding']:17.3f}")
result.figure("transformer_grokking.png")
print("wrote transformer_grokking.png")

first, last = result.rows[0], result.rows[-1]
assert c["grokked"] and c["clocks/generalization"] >= 5 * c["clocks/fit"]
assert last["G"] <= 0.6 * first["G"] and last["heads"] <= 0.4 * first["heads"]
