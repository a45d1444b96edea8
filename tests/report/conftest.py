import pytest
import torch

import gdlens as gd


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
