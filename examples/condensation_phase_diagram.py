"""The phase diagram of two-layer ReLU networks (Luo, Xu, Ma & Zhang, arXiv 2007.07497): how far
the input weights travel, RD = ‖W(end) − W(0)‖ / ‖W(0)‖, as the width m grows at a fixed
initialisation exponent γ (every weight and bias drawn from N(0, m^−γ)).

    γ < 1: linear (NTK) regime, RD → 0 as m grows
    γ = 1: critical, RD stays O(1)
    γ > 1: condensed, RD grows

Each configuration follows gradient flow (optimizer "flow": Armijo-controlled Euler steps), the
dynamics the theory is about, to a training loss 10⁻³ of its start or below. Runs land in
./gdlens-runs, so a rerun only redraws.

    python examples/condensation_phase_diagram.py   # about 30 s on 2 CPU cores
Writes condensation_phase_diagram.png (log RD against log m, one line per γ).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from gdlens.sweep.experiments import condensation_phase_diagram


def main() -> None:
    frame = condensation_phase_diagram("gdlens-runs", workers=2, activations=("relu",), gammas=(0.5, 1.0, 1.75),
                                       widths=(32, 128, 512), steps=3000)
    print(frame[["gamma", "hidden", "rd", "loss_ratio", "slope", "regime"]].round(4).to_string(index=False))
    assert (frame["loss_ratio"] < 1e-2).all(), "every run should have converged"
    regimes = dict(zip(frame["gamma"], frame["regime"]))
    assert regimes == {0.5: "linear", 1.0: "critical", 1.75: "condensed"}, regimes

    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for i, (gamma, part) in enumerate(frame.groupby("gamma")):
        ax.loglog(part["hidden"], part["rd"], "o-", color=f"C{i}",
                  label=f"γ = {gamma:g}: {part['regime'].iloc[0]} (slope {part['slope'].iloc[0]:+.2f})")
    ax.set_xlabel("width m")
    ax.set_ylabel("RD of the input weights")
    ax.set_xticks(sorted(set(frame["hidden"])), [str(m) for m in sorted(set(frame["hidden"]))])
    ax.xaxis.set_minor_formatter("")
    ax.set_title("two-layer ReLU network, gradient flow")
    ax.legend(fontsize=8)
    fig.savefig("condensation_phase_diagram.png", dpi=80)
    print("wrote condensation_phase_diagram.png; slopes", np.round(sorted(set(frame["slope"])), 2))


if __name__ == "__main__":  # the sweep's worker processes re-import this file
    main()
