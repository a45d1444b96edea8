"""Bring your own cell: any recursion z_t = f(z_{t-1}, x_t; θ) written as a pure function of θ
gets the whole KP decomposition (arXiv 2507.06381) through torch.func, with no closed form.

The cell here is a leaky firing-rate network, z_t = (1 − α) z_{t-1} + α tanh(W z_{t-1} + U x_t + b),
the workhorse of computational neuroscience. The script builds G = P K Pᵀ matrix-free, checks
it against the dense Jacobian of the trajectory (G = (dz/dθ)(dz/dθ)ᵀ, from torch.func.jacrev)
in float64, and then measures it.

    python examples/custom_cell.py    # about 5 s on one CPU thread
"""

from __future__ import annotations

import torch
from torch import nn

import gdlens as gd


class LeakyRateRNN(gd.models.StateSpaceModel):
    """z_t = (1 − α) z_{t-1} + α tanh(W z_{t-1} + U x_t + b), y_t = C z_t + d (the default read(φ, z))."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, alpha: float = 0.2, g: float = 1.5):
        super().__init__()
        self.input_size, self.state_size, self.output_size, self.alpha = input_size, hidden_size, output_size, alpha
        self.W = nn.Parameter(g * torch.randn(hidden_size, hidden_size) / hidden_size**0.5)
        self.U = nn.Parameter(torch.randn(hidden_size, input_size) / input_size**0.5)
        self.b = nn.Parameter(torch.zeros(hidden_size))
        self.readout = nn.Linear(hidden_size, output_size)  # φ: names starting with "readout."

    def step(self, theta, z_prev, x_t, t):  # pure: reads θ, never self.W
        drive = z_prev @ theta["W"].T + x_t @ theta["U"].T + theta["b"]
        return (1 - self.alpha) * z_prev + self.alpha * torch.tanh(drive)


torch.manual_seed(0)
task = gd.tasks.get("sine_generation")
data = task.generate(4, seed=0).to(dtype=torch.float64)
data = data.subset(slice(0, 4))
x, target = data.x[:, :25], data.target[:, :25]  # 4 trials of 25 steps
model = LeakyRateRNN(x.shape[-1], 16, target.shape[-1]).double()
kp = gd.KPFlow(model, x, target, loss="mse")
B, T, H = kp.hidden.shape

# dense reference: M = dz/dθ over the whole trajectory, G = M Mᵀ
theta = {name: p.detach() for name, p in model.state_params().items()}
jac = torch.func.jacrev(lambda th: model.unroll(th, x))(theta)
M = torch.cat([j.reshape(B * T * H, -1) for j in jac.values()], dim=1)
G_dense = M @ M.T
G_ours = kp.G.dense()
rel = float(torch.linalg.matrix_norm(G_ours - G_dense) / torch.linalg.matrix_norm(G_dense))
print(f"G = P K Pᵀ (matrix-free) vs dense (dz/dθ)(dz/dθ)ᵀ: relative error {rel:.1e} over {B * T * H}² entries")
assert rel < 1e-10

print(f"one SGD step vs −lr·G e: relative mismatch {kp.step_check(1e-4).rel_error:.1e}")
for name, estimate in gd.flow.effective_ranks(kp, num_matvecs=60, seed=0).items():
    exact = {"K": kp.K, "P": kp.P @ kp.P.T, "G": kp.G}[name].dense()
    truth = float(torch.trace(exact) ** 2 / (exact**2).sum())
    print(f"effective rank of {name}: {estimate.value:7.2f} ± {estimate.stderr:.2f}   (exact {truth:.2f})")
    assert abs(estimate.value - truth) < 5 * estimate.stderr + 1e-6 * truth
