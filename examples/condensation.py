"""Condensation: from a small initialisation, the neurons of a two-layer network collapse onto
a few orientations early in training; from a standard initialisation they barely move
(Luo et al., arXiv 2007.07497; Zhou et al., arXiv 2105.11686).

Neuron i of the hidden layer is u_i = [w_i, b_i]; two neurons share an orientation when
cos(u_i, u_j) ≥ 0.95. A random layer in 3 dimensions spreads over ~15 such orientations.

    python examples/condensation.py          # about 10 s on one CPU thread
Writes condensation.png (the cosine-similarity matrices, neurons ordered by orientation).
"""

from __future__ import annotations

import torch

import gdlens as gd
from gdlens.probes.condensation import orientation_similarity

data = gd.tasks.teacher_student(64, input_dim=2, teacher_width=3, seed=0)  # 64 points, 2-d input
counts, matrices = {}, {}
for activation in ("relu", "tanh"):
    for init_scale in (1e-3, 1.0):  # every weight has std init_scale/√fan_in
        torch.manual_seed(0)
        model = gd.models.MLP(2, 200, 1, activation=activation, init_scale=init_scale)
        probe = gd.probes.CondensationProbe(schedule=gd.probes.Schedule(log_points=8))
        result = gd.train(model, data, optimizer="adam", lr=1e-3, steps=2000, probes=[probe], progress=False)
        steps, n = result.series("condensation/orientations")
        _, cos = result.series("condensation/mean_abs_cos")
        key = (activation, init_scale)
        counts[key] = dict(zip(steps.tolist(), n.astype(int).tolist()))
        matrices[key] = orientation_similarity(*probe.weights(model)).numpy()
        print(f"{activation:>4} init {init_scale:<6g} final loss {result.losses[-1]:.1e}   orientations by step "
              + " ".join(f"{s}:{c}" for s, c in counts[key].items()) + f"   mean |cos| {cos[-1]:.2f}")

# small initialisation condenses; the standard one stays spread out
for activation in ("relu", "tanh"):
    assert min(counts[(activation, 1e-3)].values()) <= 4 < min(counts[(activation, 1.0)].values())

from matplotlib.figure import Figure  # noqa: E402  (the report extra)

from gdlens.report.figures import spectral_order  # noqa: E402

fig = Figure(figsize=(10, 9), layout="constrained")
for ax, (key, S) in zip(fig.subplots(2, 2).flat, matrices.items()):
    order = spectral_order(S)
    im = ax.imshow(S[order][:, order], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(f"{key[0]}, init scale {key[1]:g} (end); fewest orientations {min(counts[key].values())}")
fig.colorbar(im, ax=fig.axes, label="cosine similarity of neurons")
fig.savefig("condensation.png", dpi=80)
print("wrote condensation.png")
