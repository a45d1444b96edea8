"""The built-in phase diagrams run end to end on tiny grids and reduce to the documented tables."""

import numpy as np

from gdlens.sweep.experiments import classify_regime, condensation_phase_diagram, condensation_spec, kpflow_phase_diagram


def test_classify_regime():
    w = [16, 64, 256]
    assert classify_regime(w, [1.0, 0.5, 0.25])[0] == "linear"
    assert classify_regime(w, [1.0, 2.0, 4.0])[0] == "condensed"
    assert classify_regime(w, [1.0, 1.01, 0.99])[0] == "critical"


def test_condensation_spec_reaches_gamma():
    configs = condensation_spec(widths=(16, 256), gammas=(0.5, 1.5), activations=("relu",)).expand()
    for c in configs:  # beta1 * beta2 = g^2 / sqrt(m d) = m^-gamma / sqrt(d)
        m, g = c["model"]["hidden"], c["model"]["g"]
        np.testing.assert_allclose(np.log(g**2 / np.sqrt(m)) / np.log(m), -c["gamma"])


def test_condensation_phase_diagram(tmp_path):
    frame = condensation_phase_diagram(tmp_path / "s", backend="serial", widths=(8, 16), gammas=(0.5, 1.75),
                                       activations=("relu",), steps=15)
    assert len(frame) == 4 and not frame.attrs["errors"]
    assert {"activation", "gamma", "hidden", "g", "rd", "orientations", "regime", "slope"} <= set(frame.columns)
    assert set(frame["regime"]) <= {"linear", "critical", "condensed"}
    assert (frame["rd"] > 0).all() and (frame["orientations"] >= 1).all()


def test_kpflow_phase_diagram(tmp_path):
    frame = kpflow_phase_diagram(tmp_path / "s", backend="serial", gs=(0.5, 2.0), hidden=6, steps=3, batch_size=8)
    assert len(frame) == 4 and not frame.attrs["errors"]
    for name in ("rank_K", "rank_P", "rank_G", "participation_ratio"):
        for when in ("init", "final"):
            assert np.isfinite(frame[f"{name}_{when}"]).all() and (frame[f"{name}_{when}"] > 0).all()
