"""Training: the loop (:func:`train`) and the :class:`Recorder` that runs probes on a schedule
(also inside a user's own loop)."""

from gdlens.train.loop import TrainResult, make_optimizer, train
from gdlens.train.recorder import Recorder

__all__ = ["train", "TrainResult", "Recorder", "make_optimizer"]
