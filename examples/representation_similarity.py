"""Representation similarity across networks: do two networks trained from different seeds
learn the same features? Linear CKA (Kornblith et al., arXiv 1905.00414) compares whole layers
and is invariant to rotations and isotropic scaling of the features; neuron matching (Li et al.,
arXiv 1511.07543) pairs individual neurons one-to-one by activation correlation.

    python examples/representation_similarity.py   # about 10 s on one CPU thread
Writes representation_similarity.png (the layer-by-layer CKA matrix between the two networks).
"""

from __future__ import annotations

import torch

import gdlens as gd
from gdlens.probes.similarity import cka_matrix, match_neurons
from gdlens.probes.plumbing import layer_activations

data = gd.tasks.teacher_student(1024, input_dim=10, teacher_width=8, output_dim=4, seed=0)
train_data, test_data = data.subset(slice(0, 768)), data.subset(slice(768, None))
layers = ["net.1", "net.3", "net.5"]  # the activations after each hidden layer of a depth-3 MLP


def network(seed: int, train: bool) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = gd.models.MLP(10, 64, 4, depth=3, activation="tanh")
    if train:
        gd.train(model, train_data, optimizer="adam", lr=3e-3, steps=600, progress=False)
    return model.eval()


x = test_data.x  # compare the networks on inputs neither was trained on
a, b, untrained = network(1, True), network(2, True), network(3, False)
acts = {name: [layer_activations(m, x, layer) for layer in layers] for name, m in
        (("A", a), ("B", b), ("untrained", untrained))}
for name, model in (("A", a), ("B", b)):
    with torch.no_grad():
        r2 = 1 - (model(x) - test_data.target).pow(2).sum() / (test_data.target - test_data.target.mean(0)).pow(2).sum()
    print(f"network {name}: R² on held-out inputs {r2:.3f}")

M = cka_matrix(acts["A"], acts["B"])               # (3, 3): CKA(layer i of A, layer j of B)
U = cka_matrix(acts["A"], acts["untrained"])
print("linear CKA, trained A (rows) vs trained B (columns):\n", M.numpy().round(2))
print("linear CKA, trained A vs untrained, same layer:", torch.diagonal(U).numpy().round(2))
assert float(M[-1, -1]) > float(U[-1, -1]), "the last layers of two trained networks are closer than to an untrained one"

match = match_neurons(acts["A"][-1], acts["B"][-1], absolute=True)  # tanh: a neuron and its negative are equivalent  # pair the last hidden layer's neurons
corr = match.correlation[torch.isfinite(match.correlation)]
print(f"last hidden layer, one-to-one neuron matching: median correlation {corr.median():.2f}, "
      f"{(corr > 0.9).sum()} of {len(corr)} pairs above 0.9")
print("CKA is high while single neurons match poorly: the two networks share a feature subspace, not a basis.")

figure = gd.report.figures.cka_matrix(M.numpy(), labels=layers, title="linear CKA: network A (rows) vs B (columns)")
figure.savefig("representation_similarity.png", dpi=80)
print("wrote representation_similarity.png")
