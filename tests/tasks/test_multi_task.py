"""multi_task: one-hot context matches task_ids, padding and mask, both channel layouts; the cue
shown in a context period only, with noise."""

from __future__ import annotations

import pytest
import torch

from gdlens.tasks import get, multi_task

MIX = [
    ("memory_pro", {"variant": "DelayPro", "T_delay": 5}),
    ("memory_pro", {"variant": "DelayAnti", "T_delay": 5}),
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
        "memory_pro(T_delay=5, variant=DelayPro)",
        "memory_pro(T_delay=5, variant=DelayAnti)",
        "flip_flop(T=60, bits=2, pulse_prob=0.1)",
        "context_integration(T_resp=5, T_stim=20)",
    ]
    m = data.metric(data.target)
    assert m["loss"] == 0.0
    assert m["flip_flop(T=60, bits=2, pulse_prob=0.1)/accuracy"] == 1.0
    assert m["memory_pro(T_delay=5, variant=DelayAnti)/angle_error"] == 0.0
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


def test_cue_only_in_the_context_period():
    """cue_period=n: the one-hot is on for steps < min(n, T_k) and 0 after; nothing else changes."""
    full = multi_task(MIX, 16, seed=4, dtype=torch.float64)
    short = multi_task(MIX, 16, seed=4, dtype=torch.float64, cue_period=7)
    K, n_in = len(MIX), full.x.shape[2] - len(MIX)
    assert torch.equal(short.x[..., :n_in], full.x[..., :n_in]) and torch.equal(short.target, full.target)
    assert torch.equal(short.task_ids, full.task_ids) and torch.equal(short.mask, full.mask)
    onehot = torch.nn.functional.one_hot(short.task_ids, K).double()
    assert torch.equal(short.x[:, :7, n_in:], onehot[:, None].expand(16, 7, K))
    assert (short.x[:, 7:, n_in:] == 0).all()
    assert short.info["cue_period"] == 7


def test_cue_noise_on_trial_steps_only():
    """N(0, σ²) on the cue channels within each trial, zero on padding; the same mix otherwise."""
    sigma = 0.2
    clean = multi_task(MIX, 200, seed=1, dtype=torch.float64, cue_period=5)
    noisy = multi_task(MIX, 200, seed=1, dtype=torch.float64, cue_period=5, cue_noise=sigma)
    n_in = clean.x.shape[2] - len(MIX)
    assert torch.equal(noisy.x[..., :n_in], clean.x[..., :n_in]) and torch.equal(noisy.target, clean.target)
    diff = noisy.x[..., n_in:] - clean.x[..., n_in:]
    lengths = torch.tensor(clean.info["lengths"])[clean.task_ids]  # (B,) T_k of each trial
    on_trial = torch.arange(clean.x.shape[1])[None, :] < lengths[:, None]
    assert (diff[~on_trial] == 0).all()
    assert abs(float(diff[on_trial].std()) - sigma) < 0.01 and abs(float(diff[on_trial].mean())) < 0.005


def test_bad_cue_arguments():
    with pytest.raises(ValueError, match="cue_period must be an int >= 1"):
        multi_task(MIX, 8, cue_period=0)
    with pytest.raises(ValueError, match="cue_noise must be a number >= 0"):
        multi_task(MIX, 8, cue_noise=-0.1)
