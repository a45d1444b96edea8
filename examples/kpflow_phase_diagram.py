"""A sweep and its phase diagram: how the initial recurrent-weight scale g shapes the KP
operators of a GRU and a tanh RNN trained on memory-pro (KPFlow, arXiv 2507.06381).

Each of the 2 × 4 configurations trains for 150 steps with the KP probe; every run lands in
the run store ./gdlens-runs, so running the script again skips what is done and only redraws.
Then the sweep's HTML report (phase diagrams included) is written.

    python examples/kpflow_phase_diagram.py   # about 1 minute on 2 CPU cores, seconds on a rerun
Writes kpflow_phase_diagram.png and kpflow_g.html.
"""

from __future__ import annotations

import gdlens as gd
from gdlens.sweep.experiments import kpflow_phase_diagram


def main() -> None:
    store = gd.open_store("gdlens-runs")
    frame = kpflow_phase_diagram(store, workers=2, gs=(0.1, 0.5, 1.5, 3.0), hidden=24, steps=150)
    columns = ["model", "g", "final_loss", "rank_K_final", "rank_P_final", "rank_G_final", "participation_ratio_final"]
    print(frame[columns].round(2).to_string(index=False))

    # the propagator's effective rank falls as g grows: large g makes long-memory, low-rank P
    for model, part in frame.groupby("model"):
        part = part.sort_values("g")
        assert part["rank_P_final"].iloc[0] > part["rank_P_final"].iloc[-1], model

    figure = gd.report.figures.phase_diagram(frame, x="g", y="model", value="rank_G_final", log=True)
    figure.savefig("kpflow_phase_diagram.png", dpi=80)
    print("wrote kpflow_phase_diagram.png and", gd.report(store, "kpflow_g.html", name="kpflow_g"))


if __name__ == "__main__":  # the sweep's worker processes re-import this file
    main()
