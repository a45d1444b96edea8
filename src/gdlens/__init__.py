"""gdlens: a lens on gradient descent.

Exact, matrix-free operators that decompose how training moves a network (the KP
decomposition of gradient flow, arXiv 2507.06381), probes of the known phenomena of training
dynamics, and the harness and run store that record them. Data flows one way:
tasks → models → train (Recorder → probes → flow/operators) → store → report.
``gd.report(...)``, ``gd.sweep(...)`` and ``gd.reproduce(...)`` (published results rerun, with
their claims checked) are callable packages (their main function and
their namespace at once).
"""

from gdlens import experiments, flow, models, operators, probes, report, reproduce, store, sweep, tasks
from gdlens.flow import KPFlow
from gdlens.store import open_store
from gdlens.train import ProbeError, Recorder, resume, train

__version__ = "0.1.0"

__all__ = [
    "operators",
    "models",
    "flow",
    "probes",
    "tasks",
    "store",
    "report",
    "sweep",
    "experiments",
    "reproduce",
    "KPFlow",
    "train",
    "resume",
    "Recorder",
    "ProbeError",
    "open_store",
    "__version__",
]
