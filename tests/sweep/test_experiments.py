"""The built-in phase diagrams run end to end on tiny grids and reduce to the documented tables."""

import numpy as np

from gdlens.sweep.experiments import classify_regime, condensation_phase_diagram, condensation_spec, kpflow_phase_diagram


def test_classify_regime():
    w = [16, 64, 256]
    assert classify_regime(w, [1.0, 0.5, 0.25])[0] == "linear"
    assert classify_regime(w, [1.0, 2.0, 4.0])[0] == "condensed"
    assert classify_regime(w, [1.0, 1.01, 0.99])[0] == "critical"


def test_condensation_spec_reaches_gamma():
    """Luo et al.'s γ = −log(β₁β₂)/log m with β₁ = β₂ = init_std, and the built models draw
    every weight and bias with that std."""
    import torch

    from gdlens.sweep.runner import build_model

    configs = condensation_spec(widths=(16, 256), gammas=(0.5, 1.5), activations=("relu",)).expand()
    for c in configs:
        m, beta = c["model"]["hidden"], c["model"]["init_std"]
        np.testing.assert_allclose(-np.log(beta * beta) / np.log(m), c["meta"]["gamma"])
    model = build_model(dict(configs[-1], seed=0))
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert abs(float(params.std()) / configs[-1]["model"]["init_std"] - 1) < 0.05


def test_condensation_phase_diagram(tmp_path):
    frame = condensation_phase_diagram(tmp_path / "s", backend="serial", widths=(8, 16), gammas=(0.5, 1.75),
                                       activations=("relu",), steps=15)
    assert len(frame) == 4 and not frame.attrs["errors"]
    assert {"activation", "gamma", "hidden", "init_std", "rd", "orientations", "loss_ratio", "regime",
            "slope"} <= set(frame.columns)
    assert set(frame["regime"]) <= {"linear", "critical", "condensed"}
    assert (frame["rd"] > 0).all() and (frame["orientations"] >= 1).all()


def test_condensation_regimes_come_out_of_gradient_flow(tmp_path):
    """The physics (Luo et al. arXiv 2007.07497): with ReLU, RD falls with width at γ = 0.5 and
    grows at γ = 1.75 once the gradient flow has converged."""
    frame = condensation_phase_diagram(tmp_path / "s", backend="serial", widths=(32, 128, 512), gammas=(0.5, 1.75),
                                       activations=("relu",), steps=2500)
    assert (frame["loss_ratio"] < 1e-2).all(), frame
    regimes = dict(zip(frame["gamma"], frame["regime"]))
    assert regimes == {0.5: "linear", 1.75: "condensed"}, frame


def test_kpflow_phase_diagram(tmp_path):
    frame = kpflow_phase_diagram(tmp_path / "s", backend="serial", gs=(0.5, 2.0), hidden=6, steps=3, batch_size=8)
    assert len(frame) == 4 and not frame.attrs["errors"]
    for name in ("rank_K", "rank_P", "rank_G", "participation_ratio"):
        for when in ("init", "final"):
            assert np.isfinite(frame[f"{name}_{when}"]).all() and (frame[f"{name}_{when}"] > 0).all()
