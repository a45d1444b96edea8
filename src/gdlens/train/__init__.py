"""Training: the loop (:func:`train`), :func:`resume` of a stored run, and the
:class:`Recorder` that runs probes on a schedule (also inside a user's own loop)."""

from gdlens.train.loop import TrainResult, make_optimizer, train
from gdlens.train.recorder import ProbeError, Recorder
from gdlens.train.resumption import resume

__all__ = ["train", "resume", "TrainResult", "Recorder", "ProbeError", "make_optimizer"]
