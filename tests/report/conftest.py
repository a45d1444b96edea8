import pytest
import torch

import gdlens as gd
from gdlens import probes as P

@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny real run with the default probes and the KP probe: (store, run)."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("report-store")
    gd.train(gd.models.GRU(3, 8, 3), gd.tasks.get("flip_flop", T=10), steps=20, batch_size=8,
             probes=gd.probes.default_probes(True) + [gd.probes.KPProbe()], store=path, progress=False)
    store = gd.open_store(path)
    run = store.run(store.runs(as_frame=False)[-1]["id"])
    return store, run


@pytest.fixture(scope="session")
def every_probe_runs(tmp_path_factory):
    """Every built-in probe on a model it is made for, in two tiny runs of one store:
    ``recurrent`` (a GRU on flip-flop: the KP and hidden-state probes need a state-space model,
    the others take any) and ``mlp`` (a one-hidden-layer ReLU MLP fitting a 1-D Fourier target on
    a grid, full batch: condensation reads an ``nn.Linear``, the frequency principle needs 1-D
    inputs on a uniform grid), ``multitask`` (a GRU on a mix of two flip-flop tasks: the
    multi-task probe needs ``task_ids``), ``embedding`` (an embedding MLP on modular addition:
    the energy probe's embedding norms, the group probe's head/embedding ratios) and
    ``deep_linear`` (a deep linear network: the energy probe's Schatten and factor energies).
    Returns (store, {label: run})."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("every-probe-store")
    recurrent = [
        P.MetricsProbe(schedule="log:4"), P.ParameterNormProbe(schedule="log:4"),
        P.RelativeChangeProbe(schedule="log:4"), P.HiddenParticipationProbe(schedule="log:4"),
        P.KPProbe(schedule="log:3", max_trials=4, num_matvecs=10, k=3),
        P.SharpnessProbe(schedule="log:3", max_samples=8), P.NTKProbe(schedule="log:3", n_samples=4),
        P.RepresentationProbe(schedule="log:3", n_samples=16), P.ClockProbe(schedule=5),
        P.EnergyProbe(schedule="log:4"), P.HeadEmbeddingProbe(schedule="log:3", ntk_samples=8),
    ]
    gd.train(gd.models.GRU(2, 8, 2), gd.tasks.get("flip_flop", T=10, bits=2), steps=20, batch_size=8,
             probes=recurrent, store=path, name="recurrent", progress=False)
    mlp = [P.MetricsProbe(schedule="log:4"), P.CondensationProbe(schedule="log:4", matrix_every=1),
           P.FrequencyProbe(schedule="log:4")]
    gd.train(gd.models.MLP(1, 16, 1), gd.tasks.get("fourier_1d"), steps=20, lr=1e-2, batch_size=64,
             probes=mlp, store=path, name="mlp", progress=False)
    task = gd.tasks.get("multi_task", tasks=[("flip_flop", {"T": 8}), ("flip_flop", {"T": 8, "pulse_prob": 0.3})])
    gd.train(gd.models.GRU(5, 8, 3), task, steps=8, batch_size=8, store=path, name="multitask", progress=False,
             probes=[P.MultiTaskProbe(schedule="log:3", groupings={"all": ["a", "b"]}, num_probes=4)])
    gd.train(gd.models.EmbeddingMLP(11, embedding=8, width=16), gd.tasks.get("modular_addition", p=11), steps=6,
             lr=1e-2, store=path, name="embedding", progress=False,
             probes=[P.EnergyProbe(schedule="log:2"), P.HeadEmbeddingProbe(schedule="log:2", ntk_samples=8)])
    gd.train(gd.models.DeepLinear(3, 6, 1, depth=3), gd.tasks.get("teacher_student", input_dim=3), steps=6, lr=1e-2,
             batch_size=32, store=path, name="deep_linear", progress=False, probes=[P.EnergyProbe(schedule="log:2")])
    store = gd.open_store(path)
    runs = {row["name"]: store.run(row["id"]) for row in store.runs(as_frame=False)}
    return store, runs
