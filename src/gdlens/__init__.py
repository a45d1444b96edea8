"""gdlens: a lens on gradient descent.

Exact, matrix-free operators that decompose how training moves a network (the KP
decomposition of gradient flow, arXiv 2507.06381), and the randomized linear algebra that
turns them into numbers. See ``gdlens.operators``, ``gdlens.models`` and ``gdlens.flow``.
"""

from gdlens import flow, models, operators
from gdlens.flow import KPFlow

__version__ = "0.1.0"

__all__ = ["operators", "models", "flow", "KPFlow", "__version__"]
