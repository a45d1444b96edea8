"""Context-dependent integration of evidence (Mante, Sussillo, Shenoy & Newsome 2013,
"Context-dependent computation by recurrent dynamics in prefrontal cortex",
doi:10.1038/nature12742).

Two noisy evidence streams ("motion" and "colour") and a context that says which one to
integrate. Per trial, each stream has a coherence c_i = ±(a value from ``coherences``), signs
and values drawn independently, and the context is 0 or 1 with equal probability::

    stimulus epoch [0, T_stim)          stream i = c_i + noise · N(0, 1) per step
    response epoch [T_stim, +T_resp)    streams 0

    x      (B, T, 4)  [stream 0, stream 1, context-0 cue, context-1 cue]; the context one-hot
                      is on for the whole trial
    target (B, T, 1)  0 in the stimulus epoch; sign(c_ctx) (±1) in the response epoch
    mask   (B, T)     True in the response epoch (the steps that count)
    loss   "mse"

The target is the sign of the relevant stream's true mean, not of its noisy sample mean, so
at low coherence even an ideal observer is below 100 %. ``info``: ``coherence`` (B, 2),
``context`` (B,) long.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gdlens.tasks.base import TaskData, check_dtype, check_int, check_nonneg, gaussian, make_generator, masked_mean

__all__ = ["context_integration", "context_integration_metric"]


def context_integration_metric(pred: Tensor, data: TaskData) -> dict[str, float]:
    """``accuracy``: fraction of trials where the sign of the mean output over the response
    epoch equals the target sign; ``mse``: mean squared error per response step."""
    mask = data.mask.to(pred.dtype)
    mean_out = (pred[..., 0] * mask).sum(1) / mask.sum(1)
    answer = data.target[..., 0].sum(1).sign()
    return {
        "accuracy": float((mean_out.sign() == answer).float().mean()),
        "mse": masked_mean((pred - data.target).pow(2), data.mask),
    }


def context_integration(
    batch_size: int,
    T_stim: int = 50,
    T_resp: int = 10,
    coherences: Sequence[float] = (0.05, 0.1, 0.2, 0.4),
    noise: float = 1.0,
    seed: int | torch.Generator = 0,
    dtype: torch.dtype = torch.float32,
) -> TaskData:
    """A batch of context-dependent integration trials (module docstring for the layout).

    Args:
        batch_size: B ≥ 1.  T_stim, T_resp: steps ≥ 1.
        coherences: positive coherence magnitudes; each stream draws one and a random sign.
        noise: std ≥ 0 of the per-step evidence noise.
        seed: int or torch.Generator.  dtype: floating dtype of x and target.
    """
    check_int("batch_size", batch_size, 1)
    check_int("T_stim", T_stim, 1)
    check_int("T_resp", T_resp, 1)
    noise = check_nonneg("noise", noise)
    dtype = check_dtype(dtype)
    if isinstance(coherences, (str, bytes)) or not isinstance(coherences, Sequence) or len(coherences) == 0:
        raise ValueError(f"coherences must be a non-empty sequence of positive numbers, got {coherences!r}")
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0 for c in coherences):
        raise ValueError(f"coherences must be positive numbers, got {tuple(coherences)!r}")
    gen = make_generator(seed)

    levels = torch.tensor([float(c) for c in coherences], dtype=torch.float64)
    which = torch.randint(len(levels), (batch_size, 2), generator=gen)
    signs = 2.0 * torch.randint(2, (batch_size, 2), generator=gen, dtype=torch.float64) - 1.0
    coherence = levels[which] * signs  # (B, 2)
    context = torch.randint(2, (batch_size,), generator=gen)

    T = T_stim + T_resp
    streams = torch.zeros(batch_size, T, 2, dtype=torch.float64)
    streams[:, :T_stim] = coherence.unsqueeze(1)
    if noise > 0:
        streams[:, :T_stim] += gaussian((batch_size, T_stim, 2), gen, torch.float64, noise)
    cues = torch.nn.functional.one_hot(context, 2).to(torch.float64).unsqueeze(1).expand(batch_size, T, 2)
    x = torch.cat([streams, cues], dim=-1)

    mask = torch.zeros(batch_size, T, dtype=torch.bool)
    mask[:, T_stim:] = True
    answer = coherence.gather(1, context.unsqueeze(1)).sign()  # (B, 1)
    target = mask.unsqueeze(-1).to(torch.float64) * answer.unsqueeze(1)
    info = {"coherence": coherence.to(dtype), "context": context}
    return TaskData(
        x=x.to(dtype), target=target.to(dtype), loss="mse", mask=mask, name="context_integration", info=info,
        metric_fn=context_integration_metric,
    )
