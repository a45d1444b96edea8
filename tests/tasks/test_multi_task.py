"""multi_task: one-hot context matches task_ids, padding and mask, both channel layouts."""

from __future__ import annotations

import pytest
import torch

from gdlens.tasks import get, multi_task

MIX = [
    ("memory_pro", {"variant": "pro", "T_delay": 5}),
    ("memory_pro", {"variant": "anti", "T_delay": 5}),
    ("flip_flop", {"T": 60, "bits": 2, "pulse_prob": 0.1}),
    ("context_integration", {"T_stim": 20, "T_resp": 5}),
]


@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_layout_context_and_padding(layout):
    B, K = 43, len(MIX)
    data = multi_task(MIX, B, layout=layout, seed=3)
    parts, rows = data.info["parts"], data.info["rows"]
    sizes_in = [p.x.shape[2] for p in parts]  # 3, 3, 2, 4
    sizes_out = [p.target.shape[2] for p in parts]  # 3, 3, 2, 1
    n_in = max(sizes_in) if layout == "shared" else sum(sizes_in)
    n_out = max(sizes_out) if layout == "shared" else sum(sizes_out)
    T = max(p.x.shape[1] for p in parts)
    assert T == 60
    assert data.x.shape == (B, T, n_in + K) and data.target.shape == (B, T, n_out) and data.mask.shape == (B, T)
    assert data.task_ids.shape == (B,) and data.task_ids.dtype == torch.long

    # balanced and shuffled
    counts = torch.bincount(data.task_ids, minlength=K).tolist()
    assert counts == [11, 11, 11, 10]
    assert not torch.equal(data.task_ids, data.task_ids.sort().values)

    # the context one-hot equals task_ids on the trial's steps, 0 on padding
    ctx = data.x[..., n_in:]
    for b in range(B):
        k = int(data.task_ids[b])
        T_k = parts[k].x.shape[1]
        assert torch.equal(ctx[b, :T_k], torch.nn.functional.one_hot(torch.tensor(k), K).float().expand(T_k, K))
        assert (ctx[b, T_k:] == 0).all()

    # each component's data sits in its rows, steps and channels; everything else is 0
    x_rest, t_rest = data.x[..., :n_in].clone(), data.target.clone()
    for k, part in enumerate(parts):
        T_k = part.x.shape[1]
        cin, cout = data.info["in_slices"][k], data.info["out_slices"][k]
        assert torch.equal(rows[k], (data.task_ids == k).nonzero().squeeze(1))
        assert torch.equal(data.x[rows[k], :T_k, cin], part.x)
        assert torch.equal(data.target[rows[k], :T_k, cout], part.target)
        expected_mask = torch.ones(len(rows[k]), T_k, dtype=torch.bool) if part.mask is None else part.mask
        assert torch.equal(data.mask[rows[k], :T_k], expected_mask)
        assert not data.mask[rows[k], T_k:].any()
        x_rest[rows[k].unsqueeze(1), :T_k, cin] = 0
        t_rest[rows[k].unsqueeze(1), :T_k, cout] = 0
    assert (x_rest == 0).all() and (t_rest == 0).all()
    if layout == "separate":  # disjoint channel blocks
        starts = [s.start for s in data.info["in_slices"]]
        assert starts == [0, 3, 6, 8]


def test_metric_per_component_and_labels():
    data = multi_task(MIX, 20, seed=0)
    assert data.info["labels"] == [
        "memory_pro(T_delay=5, variant=pro)",
        "memory_pro(T_delay=5, variant=anti)",
        "flip_flop(T=60, bits=2, pulse_prob=0.1)",
        "context_integration(T_resp=5, T_stim=20)",
    ]
    m = data.metric(data.target)
    assert m["loss"] == 0.0
    assert m["flip_flop(T=60, bits=2, pulse_prob=0.1)/accuracy"] == 1.0
    assert m["memory_pro(T_delay=5, variant=anti)/angle_error"] == 0.0
    assert m["context_integration(T_resp=5, T_stim=20)/accuracy"] == 1.0
    # duplicate components get distinct labels
    dup = multi_task(["flip_flop", "flip_flop"], 4, seed=0)
    assert dup.info["labels"] == ["flip_flop#0", "flip_flop#1"]


def test_accepts_task_objects_and_determinism():
    tasks = [get("flip_flop", T=10), get("sine_generation", T=12)]
    a = multi_task(tasks, 9, seed=5, dtype=torch.float64)
    b = multi_task(tasks, 9, seed=5, dtype=torch.float64)
    c = multi_task(tasks, 9, seed=6, dtype=torch.float64)
    assert a.x.dtype == torch.float64 and a.target.dtype == torch.float64
    assert torch.equal(a.x, b.x) and torch.equal(a.task_ids, b.task_ids)
    assert not torch.equal(a.target, c.target)


def test_bad_mixes():
    with pytest.raises(ValueError, match="batch_size"):
        multi_task(MIX, 3)
    with pytest.raises(ValueError, match="fixed-dataset"):
        multi_task(["flip_flop", "teacher_student"], 8)
    with pytest.raises(ValueError, match="unknown task"):
        multi_task(["flip_flop", "nope"], 8)
    with pytest.raises(ValueError, match="non-empty list"):
        multi_task([], 8)
    with pytest.raises(ValueError, match="non-empty list"):
        multi_task("flip_flop", 8)
    with pytest.raises(ValueError, match="layout"):
        multi_task(["flip_flop"], 8, layout="stacked")
    with pytest.raises(ValueError, match="name, a"):
        multi_task([("flip_flop", 3)], 8)


def test_metric_matches_the_components_and_survives_subsets():
    data = multi_task(MIX, 24, seed=8, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    pred = data.target + 0.3 * torch.randn(data.target.shape, generator=gen, dtype=torch.float64)
    m = data.metric(pred)
    for k, (label, part) in enumerate(zip(data.info["labels"], data.info["parts"])):
        rows, cols, T_k = data.info["rows"][k], data.info["out_slices"][k], part.x.shape[1]
        own = part.metric(pred[rows, :T_k, cols])
        for key, value in own.items():
            assert m[f"{label}/{key}"] == pytest.approx(value, rel=1e-12, abs=1e-12)
    # on a subset: the components present are scored on their own trials, the absent left out
    idx = (data.task_ids != 2).nonzero().squeeze(1)[:7]
    sub = data.subset(idx).metric(pred[idx])
    assert not any(key.startswith("flip_flop") for key in sub)
    k = 1
    label, part = data.info["labels"][k], data.info["parts"][k]
    keep = [int((data.info["rows"][k] == i).nonzero()) for i in idx.tolist() if int(data.task_ids[i]) == k]
    own = part.subset(torch.tensor(keep)).metric(pred[idx][data.task_ids[idx] == k][:, : part.x.shape[1], :3])
    for key, value in own.items():
        assert sub[f"{label}/{key}"] == pytest.approx(value, rel=1e-12, abs=1e-12)
