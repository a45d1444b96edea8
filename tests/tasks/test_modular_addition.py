"""modular_addition: every pair once, correct labels per operation, the split."""

from __future__ import annotations

import pytest
import torch

from gdlens.tasks import modular_addition
from gdlens.tasks.modular_addition import OPERATIONS, is_prime

PYTHON_OPS = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * pow(b, -1, p)) % p,  # Python's own modular inverse
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("p", [5, 13])
def test_every_pair_once_with_the_right_label(operation, p):
    data = modular_addition(p, operation, train_fraction=0.3, seed=1)
    pairs = torch.cat([data.train.x, data.test.x]).tolist()
    labels = torch.cat([data.train.target, data.test.target]).tolist()
    expected_pairs = {(a, b) for a in range(p) for b in range(p) if operation != "div" or b != 0}
    assert len(pairs) == len(expected_pairs) == (p * p if operation != "div" else p * (p - 1))
    assert {tuple(ab) for ab in pairs} == expected_pairs  # with the count: each exactly once
    for (a, b), y in zip(pairs, labels):
        assert y == PYTHON_OPS[operation](a, b, p)
    if operation == "div":  # the label times b gives a back
        assert all((y * b) % p == a for (a, b), y in zip(pairs, labels))
    assert data.train.x.dtype == torch.long and data.train.target.dtype == torch.long
    assert data.train.x.shape[1] == 2 and data.train.target.dim() == 1


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_split_fraction_and_determinism(fraction):
    p = 23
    a = modular_addition(p, train_fraction=fraction, seed=4)
    b = modular_addition(p, train_fraction=fraction, seed=4)
    c = modular_addition(p, train_fraction=fraction, seed=5)
    assert len(a.train.target) == round(fraction * p * p) and len(a.test.target) == p * p - round(fraction * p * p)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x)
    # the train split is a random subset, not a block of the (a, b) order
    assert a.train.x[:, 0].unique().numel() == p
    # each split is listed in (a, b) order
    keys = a.train.x[:, 0] * p + a.train.x[:, 1]
    assert torch.equal(keys, keys.sort().values)


def test_one_hot_encoding_and_metric():
    p = 11
    tokens = modular_addition(p, "mul", seed=2)
    onehot = modular_addition(p, "mul", encoding="one_hot", seed=2, dtype=torch.float64)
    assert onehot.train.x.shape == (len(tokens.train.target), 2 * p) and onehot.train.x.dtype == torch.float64
    assert torch.equal(onehot.train.x[:, :p].argmax(1), tokens.train.x[:, 0])
    assert torch.equal(onehot.train.x[:, p:].argmax(1), tokens.train.x[:, 1])
    assert torch.equal(onehot.train.info["pairs"], tokens.train.x)
    assert tokens.loss == "cross_entropy" and tokens.output_size == p and tokens.input_size == 2
    logits = 20.0 * torch.nn.functional.one_hot(tokens.test.target, p).double()
    logits[:3] = logits[:3].roll(1, dims=1)  # three wrong answers
    m = tokens.test.metric(logits)
    assert m["accuracy"] == pytest.approx(1 - 3 / len(logits))
    ce = torch.nn.functional.cross_entropy(logits, tokens.test.target).item()
    assert m["loss"] == pytest.approx(ce)
    both = tokens.metric(20.0 * torch.nn.functional.one_hot(tokens.train.target, p).double(), logits)
    assert both["train/accuracy"] == 1.0 and both["test/accuracy"] == m["accuracy"]


def test_primes():
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    modular_addition(9, "mul")  # mul needs no prime
    with pytest.raises(ValueError, match="prime"):
        modular_addition(9, "div")
