"""The multi-task probe's quantities against a dense G = (dz/dθ)(dz/dθ)ᵀ from jacrev, in float64,
on a tiny GRU with three tasks; the grouping helpers by hand; the probe end to end."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import jacrev

import gdlens as gd
from gdlens.losses import loss_value
from gdlens.probes.base import ProbeContext
from gdlens.probes.multitask import (
    MultiTaskProbe,
    error_updates,
    grouping_contrast,
    hidden_similarity,
    loss_transfer,
    multitask_matrices,
    multitask_snapshot,
    overtake_step,
    update_alignment,
)

F64 = torch.float64
B, T, I, H, O = 7, 4, 3, 3, 2


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = gd.models.GRU(I, H, O, g=1.3).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, I, generator=gen, dtype=F64)
    target = torch.randn(B, T, O, generator=gen, dtype=F64)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, :2] = False
    task_ids = torch.tensor([2, 0, 1, 0, 2, 1, 0])
    kp = multitask_snapshot(model, x, target, "mse", mask)

    theta = {n: p.detach() for n, p in model.state_params().items()}
    phi = {n: p.detach() for n, p in model.readout_params().items()}
    jac = jacrev(lambda th: model.unroll(th, x))(theta)
    M = torch.cat([j.reshape(B * T * H, -1) for j in jac.values()], dim=1)
    G = M @ M.T  # dense (BTH, BTH)
    z = model.unroll(theta, x)
    e = torch.func.grad(lambda zz: loss_value(model.read(phi, zz), target, "mse", mask))(z)
    return dict(model=model, x=x, target=target, mask=mask, task_ids=task_ids, kp=kp, G=G, z=z, e=e)


def _blocks(task_ids: torch.Tensor) -> list[torch.Tensor]:
    """Per task (sorted ids) the bool mask over the B·T·H flat index."""
    return [(task_ids == t).repeat_interleave(T * H) for t in sorted(set(task_ids.tolist()))]


def test_snapshot_has_the_dense_flow(case):
    kp = case["kp"]
    torch.testing.assert_close(kp.error, case["e"], rtol=1e-10, atol=1e-12)
    v = torch.randn(B, T, H, dtype=F64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close((kp.G @ v).reshape(-1), case["G"] @ v.reshape(-1), rtol=1e-9, atol=1e-11)


def test_update_alignment_and_transfer_against_dense(case):
    G, e, ids = case["G"], case["e"].reshape(-1), case["task_ids"]
    blocks = _blocks(ids)
    updates = error_updates(case["kp"].G, case["kp"].error, ids)
    A = update_alignment(updates, ids)
    C = loss_transfer(updates, case["kp"].error, ids)
    n = len(blocks)
    for i in range(n):
        own = torch.where(blocks[i], G @ torch.where(blocks[i], e, 0.0), 0.0)  # Π_i G Π_i e
        for j in range(n):
            moved = torch.where(blocks[i], G @ torch.where(blocks[j], e, 0.0), 0.0)  # Π_i G Π_j e
            cos = float(moved @ own / (moved.norm() * own.norm()))
            assert A[i, j].item() == pytest.approx(cos, abs=1e-10)
            e_i = torch.where(blocks[i], e, 0.0)
            assert C[i, j].item() == pytest.approx(float(e_i @ moved / (e_i @ own)), abs=1e-10)
    torch.testing.assert_close(torch.diagonal(A), torch.ones(n, dtype=F64), rtol=0, atol=1e-12)
    assert not torch.allclose(A, torch.ones_like(A))  # the off-diagonal entries are informative


def test_transfer_rows_give_each_tasks_loss_rate(case):
    """Σ_j ⟨e_i, G_ij e_j⟩ = −dL_i/dτ: checked against a small SGD step on L (lr → 0)."""
    kp, ids = case["kp"], case["task_ids"]
    updates = error_updates(kp.G, kp.error, ids)
    raw_rows = [
        float((torch.where((ids == t)[:, None, None], kp.error, 0.0) * updates.sum(0)).sum()) for t in (0, 1, 2)
    ]
    lr = 1e-6
    step = kp.step_check(lr)  # actual state change after one SGD step of size lr on L
    dz = step.actual
    for t, rate in zip((0, 1, 2), raw_rows):
        e_t = torch.where((ids == t)[:, None, None], kp.error, 0.0)
        assert float((e_t * dz).sum()) / lr == pytest.approx(-rate, rel=1e-3)


def test_interference_exact_against_dense(case):
    G, ids = case["G"], case["task_ids"]
    blocks = _blocks(ids)
    mats = multitask_matrices(case["kp"], ids, method="exact")
    for i, bi in enumerate(blocks):
        for j, bj in enumerate(blocks):
            fro2 = lambda a, b: float(G[a][:, b].pow(2).sum())  # noqa: E731
            expected = fro2(bi, bj) / math.sqrt(fro2(bi, bi) * fro2(bj, bj))
            assert mats["interference"][i, j].item() == pytest.approx(expected, rel=1e-10)
    assert set(mats) == {"interference", "interference_se", "similarity", "update_alignment", "transfer"}


def test_hidden_similarity_by_loop(case):
    z, ids = case["z"], case["task_ids"]
    S = hidden_similarity(z, ids)
    flat = z.reshape(B, -1)
    for i, ti in enumerate((0, 1, 2)):
        for j, tj in enumerate((0, 1, 2)):
            cos = [
                float(torch.nn.functional.cosine_similarity(flat[a], flat[b], dim=0))
                for a in range(B) for b in range(B)
                if a != b and int(ids[a]) == ti and int(ids[b]) == tj
            ]
            assert S[i, j].item() == pytest.approx(sum(cos) / len(cos), abs=1e-12)


def test_grouping_contrast_and_overtake_by_hand():
    M = torch.tensor([[1.0, 0.8, 0.1, 0.3], [0.8, 1.0, 0.2, 0.1], [0.1, 0.2, 1.0, 0.6], [0.3, 0.1, 0.6, 1.0]])
    within = (0.8 + 0.8 + 0.6 + 0.6) / 4
    between = (0.1 + 0.3 + 0.2 + 0.1) * 2 / 8
    assert grouping_contrast(M, ["a", "a", "b", "b"]) == pytest.approx(within - between)
    assert grouping_contrast(M, ["a", "b", "a", "b"]) == pytest.approx((0.1 + 0.1) / 2 - (0.8 + 0.3 + 0.2 + 0.6) / 4)
    assert math.isnan(grouping_contrast(M, ["a", "b", "c", "d"]))  # no pair within a group
    steps = [0, 10, 20, 30, 40]
    assert overtake_step(steps, [0, 2, 0, 3, 4], [1, 1, 1, 1, 1]) == 30  # the crossing that lasts
    assert overtake_step(steps, [2, 2, 2, 2, 2], [1, 1, 1, 1, 1]) == 0
    assert overtake_step(steps, [2, 2, 2, 2, 0], [1, 1, 1, 1, 1]) is None
    assert overtake_step(steps, [0, 2, math.nan, 3, 4], [1] * 5) == 30
    with pytest.raises(ValueError, match="equal lengths"):
        overtake_step(steps, [1], [2])


def test_probe_records_what_its_panels_draw(case):
    data = gd.tasks.TaskData(x=case["x"], target=case["target"], loss="mse", mask=case["mask"],
                             task_ids=case["task_ids"], name="mix")
    probe = MultiTaskProbe(data=data, groupings={"first": ["a", "a", "b"]}, method="exact")
    ctx = ProbeContext(step=0, model=case["model"])
    state = probe.init(ctx)
    values, state2 = probe.compute(ctx, state)
    assert state is None and state2 is None and values["tasks"] == 3
    dense = multitask_matrices(case["kp"], case["task_ids"], method="exact")
    torch.testing.assert_close(values["interference"], dense["interference"])
    assert values["interference_contrast_first"] == pytest.approx(grouping_contrast(dense["interference"], "aab"))
    from fnmatch import fnmatch
    for panel in probe.panels:
        for key in panel.keys:
            assert any(fnmatch(k, key) for k in values), key
    with pytest.raises(ValueError, match="one label per task"):
        MultiTaskProbe(data=data, groupings={"bad": ["a", "b"]}).init(ctx)
    no_ids = gd.tasks.TaskData(x=case["x"], target=case["target"], loss="mse", name="plain")
    with pytest.raises(ValueError, match="task_ids"):
        MultiTaskProbe(data=no_ids).init(ctx)
    with pytest.raises(TypeError, match="KPFlow needs"):
        MultiTaskProbe(data=data).init(ProbeContext(step=0, model=torch.nn.Linear(3, 2).double()))
