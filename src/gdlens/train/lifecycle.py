"""One run's life in the store, shared by ``gd.train`` and the vectorised ensemble.

A run is created (or resumed) ``running``; the loss of every update is buffered and written as
the series ``train_step/loss`` (flushed every :data:`FLUSH_EVERY` steps, before a probe step and
a checkpoint, and at the end, so whatever a probe records, the losses before it are on disk
too); then it ends in exactly one way:

- ``finish``: the summary merged, a final checkpoint, status ``completed``;
- ``diverge``: the loss became NaN or infinite at step s; everything recorded before is kept,
  ``summary["diverged_at"] = s``, status ``diverged``;
- ``abort``: an exception: ``interrupted`` on Ctrl-C (resumable), ``failed`` otherwise, with
  the error text.

Without a store (``run is None``) every call is a no-op, so a loop is written once for both.
:func:`run_summary` is the summary both loops report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["RunLifecycle", "run_summary", "FLUSH_EVERY"]

FLUSH_EVERY = 100


class RunLifecycle:
    """The store side of one run (see the module docstring); ``run`` may be None."""

    def __init__(self, run: Any | None) -> None:
        self.run = run
        self.pending: list[tuple[int, float]] = []
        self.diverged: tuple[int, float] | None = None
        self.ended = False

    def loss(self, step: int, value: float) -> None:
        """Buffer the training loss of the update at ``step``."""
        self.pending.append((step, value))
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write the buffered losses."""
        if self.run is not None and self.pending:
            self.run.log_series("train_step/loss", [s for s, _ in self.pending], [v for _, v in self.pending])
        self.pending.clear()

    def checkpoint(self, step: int, state: Mapping[str, Any]) -> None:
        """Flush, then save ``state`` as the checkpoint of ``step``."""
        if self.run is not None:
            self.flush()
            self.run.save_checkpoint(step, state)

    def diverge(self, step: int, value: float) -> None:
        """The loss became ``value`` (not finite) at ``step``: the run ends ``diverged`` now."""
        self.flush()
        self.diverged = (step, value)
        self.ended = True
        if self.run is not None:
            self.run.diverge(step, value)

    def abort(self, err: BaseException) -> None:
        """An exception stopped training: ``interrupted`` on Ctrl-C, else ``failed``. A run that
        already ended (diverged) keeps its status."""
        self.flush()
        if self.run is not None and not self.ended:
            if isinstance(err, KeyboardInterrupt):
                self.run.interrupt()
            else:
                self.run.fail(f"{type(err).__name__}: {err}")
        self.ended = True

    def finish(self, summary: Mapping[str, Any], state: Mapping[str, Any] | None, steps: int) -> None:
        """Flush and record ``summary``; unless the run diverged, save ``state`` as the final
        checkpoint (at ``steps``) and mark it ``completed``."""
        self.flush()
        if self.run is None:
            return
        if self.diverged is not None:
            self.run.update_summary(summary)
            return
        if state is not None:
            self.run.save_checkpoint(steps, state)
        self.run.finish(summary)
        self.ended = True


def run_summary(steps: int, seconds: float, recorder: Any, final_loss: float, diverged_at: int | None,
                **extra: Any) -> dict[str, Any]:
    """What a run reports at its end: ``steps``; ``seconds`` of training; ``probe_seconds`` and
    ``recording_overhead`` = probe time / (training time − probe time); ``final_train_loss``
    (the loss before the last update, NaN without steps); ``diverged_at`` (None, or the step
    whose loss was not finite); the last float value of every recorded probe scalar; ``extra``."""
    probe = recorder.total_seconds
    summary: dict[str, Any] = {
        "steps": steps, "seconds": seconds, "probe_seconds": probe,
        "recording_overhead": probe / max(seconds - probe, 1e-12),
        "final_train_loss": float(final_loss) if steps else float("nan"), "diverged_at": diverged_at,
    }
    summary.update({k: v for k, v in ((n, recorder.last(n)) for n in recorder.history) if isinstance(v, float)})
    summary.update(extra)
    return summary
