"""The KP decomposition of a GRU learning the 3-bit flip-flop (KPFlow, arXiv 2507.06381).

Gradient flow moves the hidden states by dz/dτ = −P K Pᵀ e = −G e. This script checks that
identity against a real SGD step, then trains the GRU and shows how the effective ranks of
the parameter operator K, the propagator (through P Pᵀ) and G change as the task is learned.

    python examples/kp_flip_flop.py          # about 30 s on one CPU thread
"""

from __future__ import annotations

import torch

import gdlens as gd

torch.manual_seed(0)
task = gd.tasks.get("flip_flop", T=30, bits=3)
model = gd.models.GRU(input_size=3, hidden_size=32, output_size=3, g=0.5).double()
probe_data = task.generate(8, seed=123).to(dtype=torch.float64)  # 8 held-out trials to look through


def snapshot(label: str) -> dict[str, gd.operators.Estimate]:
    kp = gd.KPFlow(model, probe_data.x, probe_data.target, loss="mse")
    ranks = gd.flow.effective_ranks(kp, num_matvecs=40, seed=0)
    line = "  ".join(f"{name} {est.value:7.2f} ± {est.stderr:5.2f}" for name, est in ranks.items())
    print(f"{label:<14} loss {kp.loss_value:.4f}   effective rank  {line}")
    return ranks


# 1. The identity that ties the decomposition to training: one SGD step of size η moves the
#    states by −η G e + O(η²), so the relative mismatch falls linearly with η.
kp = gd.KPFlow(model, probe_data.x, probe_data.target, loss="mse")
for lr in (1e-2, 1e-3, 1e-4):
    print(f"SGD step lr={lr:g}: ‖Δz − (−lr·G e)‖ / ‖lr·G e‖ = {kp.step_check(lr).rel_error:.2e}")
assert kp.step_check(1e-4).rel_error < 0.1 * kp.step_check(1e-2).rel_error

# 2. Train, and look at the operators before and after.
before = snapshot("before")
result = gd.train(model, task, lr=3e-3, steps=300, batch_size=64, progress=False)
after = snapshot("after 300 steps")
print(f"training loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}")

# 3. The directions G moves fastest: top eigenfunctions, shaped (k, B, T, H).
kp = gd.KPFlow(model, probe_data.x, probe_data.target, loss="mse")
values, functions = gd.operators.top_eigs(kp.G, k=3, seed=0)
print("top eigenvalues of G:", ", ".join(f"{v:.3g}" for v in values.tolist()), "| eigenfunctions", tuple(functions.shape))
print(f"misdirection alignment(G, P Pᵀ) = {gd.flow.misdirection(kp).value:.3f}")
