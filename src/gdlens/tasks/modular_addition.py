"""Modular arithmetic, the grokking dataset (Power et al. 2022, arXiv 2201.02177; Nanda et al.
2023, arXiv 2301.05217).

All pairs (a, b) with a, b in 0..p−1 (b ≠ 0 for ``"div"``), labelled ``a ∘ b mod p``::

    "add"  a + b        "sub"  a − b        "mul"  a · b        "div"  a · b⁻¹  (p prime)

The pairs are split once, by ``seed``, into train and test (``round(train_fraction · n)`` pairs
for training; each split listed in (a, b) order). There is no time axis::

    train.x, test.x            (N, 2) long tokens (a, b)        encoding="tokens"
                               (N, 2p) float one-hot(a) ‖ one-hot(b)   encoding="one_hot"
    train.target, test.target  (N,) long labels in 0..p−1
    loss                       "cross_entropy" over p classes; L = mean over samples

``info`` of the split: ``p``, ``operation``; ``data.train.info["pairs"]`` (and the test's) the
(N, 2) long token pairs, whatever the encoding.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gdlens.tasks.base import SplitData, TaskData, check_choice, check_dtype, check_int, make_generator

__all__ = ["modular_addition", "modular_metric", "OPERATIONS", "ENCODINGS", "is_prime"]

OPERATIONS = ("add", "sub", "mul", "div")
ENCODINGS = ("tokens", "one_hot")


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    f = 2
    while f * f <= n:
        if n % f == 0:
            return False
        f += 1
    return True


def modular_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``accuracy``: fraction of samples whose argmax logit is the label (pred: (N, p) logits)."""
    return {"accuracy": float((pred.argmax(-1) == data.target).float().mean())}


def modular_addition(
    p: int = 97,
    operation: str = "add",
    train_fraction: float = 0.5,
    encoding: str = "tokens",
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
) -> SplitData:
    """The train/test split of ``a ∘ b mod p`` (module docstring for shapes).

    Args:
        p: modulus ≥ 2 (prime for ``"div"``).  operation: one of ``OPERATIONS``.
        train_fraction: in (0, 1), and leaving at least one pair in each split.
        encoding: ``"tokens"`` (long pairs) or ``"one_hot"`` (float, of ``dtype``).
        seed: int or torch.Generator; fixes the split.
    """
    check_int("p", p, 2)
    check_choice("operation", operation, OPERATIONS)
    check_choice("encoding", encoding, ENCODINGS)
    dtype = check_dtype(dtype)
    if operation == "div" and not is_prime(p):
        raise ValueError(f"operation='div' needs a prime p (every b ≠ 0 invertible mod p), got p = {p}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, (int, float)) or not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be a number in (0, 1), got {train_fraction!r}")
    gen = make_generator(seed)

    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    if operation == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    if operation == "add":
        labels = (a + b) % p
    elif operation == "sub":
        labels = (a - b) % p
    elif operation == "mul":
        labels = (a * b) % p
    else:
        inverse = torch.tensor([0] + [pow(v, p - 2, p) for v in range(1, p)])  # Fermat: b⁻¹ = b^(p−2)
        labels = (a * inverse[b]) % p
    pairs = torch.stack([a, b], dim=1)

    n = len(labels)
    n_train = round(train_fraction * n)
    if not 0 < n_train < n:
        raise ValueError(
            f"train_fraction = {train_fraction} puts {n_train} of the {n} pairs in the training set; "
            "each split needs at least one pair"
        )
    perm = torch.randperm(n, generator=gen)
    splits = []
    for idx in (perm[:n_train].sort().values, perm[n_train:].sort().values):
        tokens = pairs[idx]
        if encoding == "one_hot":
            one_hot = torch.nn.functional.one_hot
            x = torch.cat([one_hot(tokens[:, 0], p), one_hot(tokens[:, 1], p)], dim=1).to(dtype)
        else:
            x = tokens
        splits.append(
            TaskData(
                x=x, target=labels[idx], loss="cross_entropy", num_classes=p, name="modular_addition",
                info={"pairs": tokens, "p": p, "operation": operation}, metric_fn=modular_metric,
            )
        )
    return SplitData(train=splits[0], test=splits[1], name="modular_addition", info={"p": p, "operation": operation})
