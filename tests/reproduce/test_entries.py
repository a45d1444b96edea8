"""Every entry of the registry (but the KPFlow ones, tested in test_kpflow.py) run at the tests'
size, its claims asserted the way its report states them: a claim that does not hold at this
size is asserted as not holding (and its entry's caveat says at which size it does), so a
change in either direction shows. Also the pure helpers of the entries, against hand-written
computations in float64."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import gdlens as gd
from gdlens.reproduce.common import settled_step
from gdlens.reproduce.spike import adam_with_lambda_hat, spike_steps

# entry -> claim -> verdict at size "tiny" (the default seeds of that size)
EXPECTED = {
    "frequency-principle": {"t3_over_t1": True, "t5_over_t3": True},
    "condensation-phase": {"slope_linear": True, "slope_condensed": True},
    "edge-of-stability": {"eta_lambda_over_2": True, "sharpening": True, "loss_rises": True, "loss_ratio": True},
    "convergent-learning": {"matched_fraction": False, "matched_fraction_below_one": True,
                            "cka_over_untrained": True, "cka_layer_margin": True, "subspace_over_units": True},
    "grokking-clocks": {"gen_over_fit": True, "rep_over_fit": True, "head_over_embedding_ntk": True,
                        "head_over_embedding_grad": True},
    "adam-spike": {"quad_at_onset": False, "quad_after": True, "net_at_onset": True, "net_after": True},
}


def test_every_entry_is_tested():
    mine = {e.name for e in gd.reproduce.entries() if not e.name.startswith(("kpflow-", "test-"))}
    assert mine == set(EXPECTED)
    for name, claims in EXPECTED.items():
        assert [c.name for c in gd.reproduce.get(name).claims] == list(claims)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_at_tiny_size(name, tmp_path):
    entry = gd.reproduce.get(name)
    r = gd.reproduce(name, size="tiny", store=tmp_path / "store", out=tmp_path / "out")
    verdicts = {c["name"]: c["holds"] for c in r.claims}
    assert verdicts == EXPECTED[name], [(c["name"], c["measured"], c["stderr"]) for c in r.claims]
    for c in r.claims:
        assert c["holds"] or c["name"] in entry.caveats or not EXPECTED[name][c["name"]], \
            f"{c['name']} fails at tiny size without a caveat"
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [c["holds"] for c in data["claims"]] == list(EXPECTED[name].values())
    assert data["runs"] and all(gd.open_store(tmp_path / "store").run(rid).status == "completed"
                                for rid in data["runs"])
    page = (tmp_path / "out" / "report.html").read_text()
    assert "id='figure'" in page and "data:image/png;base64," in page and entry.citation.arxiv in page


def test_settled_step():
    steps = [0, 1, 2, 5, 10, 20, 40]
    assert settled_step(steps, [1.0, 0.05, 0.5, 0.05, 0.01, 0.02, 0.5], 0.1) == 5.0  # a lone dip does not count
    assert settled_step(steps, [0.0] * 7, 0.1) == 0.0
    assert settled_step(steps, [1, 1, 0, 0, 0, 1, 1], 0.1) == 2.0                   # nor does a later excursion
    assert math.isnan(settled_step(steps, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, math.nan], 0.1))
    assert settled_step(steps, [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0], 0.1, hold=2) == 20.0


def test_spike_steps():
    assert spike_steps([5, 4, 3, 2, 1, 0.5]) is None
    # running min 0.1 at step 3; step 5 is above 10 × 0.1
    assert spike_steps([1, 0.5, 0.2, 0.1, 0.3, 1.5, 0.05]) == (3, 5)


def test_lambda_hat_against_a_hand_written_adam():
    """On a diagonal quadratic ½ Σ a_i θ_i², λ̂_t = max_i a_i / (√v̂_i + ε) with Adam's
    v_t = β₂ v_{t−1} + (1 − β₂) g², v̂ = v / (1 − β₂ᵗ), written out here in float64."""
    a = torch.tensor([1.0, 0.3, 0.01], dtype=torch.float64)
    theta0 = torch.tensor([2.0, -1.0, 3.0], dtype=torch.float64)
    lr, steps, b2, eps = 0.05, 40, 0.999, 1e-8
    losses, eta_lam = adam_with_lambda_hat(lambda th: 0.5 * (a * th * th).sum(), theta0, lr, steps,
                                           lambda th: torch.diag(a))
    theta, v = theta0.clone(), torch.zeros(3, dtype=torch.float64)
    for t in range(1, steps + 1):
        g = a * theta
        assert losses[t - 1] == pytest.approx(float(0.5 * (a * theta * theta).sum()), rel=1e-12)
        v = b2 * v + (1 - b2) * g * g
        d = 1 / ((v / (1 - b2 ** t)).sqrt() + eps)
        assert eta_lam[t - 1] == pytest.approx(lr * float((a * d).max()), rel=1e-10)
        theta = theta - lr * d * g                       # β₁ = 0: m̂ = g
    assert np.all(np.isfinite(eta_lam))
