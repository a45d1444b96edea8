"""Edge of stability: under full-batch gradient descent with step η, the sharpness λ_max of the
training loss rises until it reaches 2/η and then hovers there while the loss keeps falling,
non-monotonically (Cohen, Kaur, Li, Kolter & Talwalkar, arXiv 2103.00065). Started above 2/η,
it is thrown down to it within a few steps (the catapult, Lewkowycz et al., arXiv 2003.02218).

The SharpnessProbe computes λ_max by Lanczos on Hessian–vector products and records it with
GD's stability threshold 2/η.

    python examples/edge_of_stability.py    # about 15 s on one CPU thread
Writes edge_of_stability.png (λ_max against 2/η for each step size).
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

import gdlens as gd

data = gd.tasks.teacher_student(256, input_dim=10, teacher_width=8, seed=0)
fig = Figure(figsize=(6.5, 3.8), layout="constrained")
ax = fig.subplots()
final_ratio = {}
for i, lr in enumerate((0.1, 0.3, 0.8)):
    torch.manual_seed(0)
    model = gd.models.MLP(10, 32, 1, depth=2, activation="tanh")
    probe = gd.probes.SharpnessProbe(schedule=gd.probes.Schedule(every=100))
    result = gd.train(model, data, optimizer="sgd", lr=lr, steps=3000, probes=[probe], progress=False)
    steps, sharpness = result.series("sharpness/lambda_max")
    rises = int((np.diff(result.losses) > 0).sum())
    final_ratio[lr] = float(np.median(sharpness[-10:]) * lr / 2)
    print(f"η = {lr:<4} 2/η = {2 / lr:5.2f}   λ_max: {sharpness[0]:.2f} at step 0 -> {sharpness[-1]:.2f} at step {steps[-1]}"
          f"   (η·λ_max/2 = {final_ratio[lr]:.2f})   loss {result.losses[0]:.3f} -> {result.losses[-1]:.1e},"
          f" rose on {rises} of {len(result.losses) - 1} steps")
    ax.plot(steps, sharpness, color=f"C{i}", label=f"η = {lr}")
    ax.axhline(2 / lr, color=f"C{i}", ls="--", lw=1)

# the small step stays below its threshold; the larger ones sit at it
assert final_ratio[0.1] < 0.8
assert all(abs(final_ratio[lr] - 1) < 0.1 for lr in (0.3, 0.8))

ax.set_xlabel("step")
ax.set_ylabel("λ_max of the training loss")
ax.set_title("sharpness (solid) and 2/η (dashed)")
ax.legend()
fig.savefig("edge_of_stability.png", dpi=80)
print("wrote edge_of_stability.png")
