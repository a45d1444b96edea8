"""gdlens: a lens on gradient descent.

Exact, matrix-free operators that decompose how training moves a network (the KP
decomposition of gradient flow, arXiv 2507.06381), and the randomized linear algebra that
turns them into numbers. See ``gdlens.operators`` and ``gdlens.models``.
"""

from gdlens import models, operators

__version__ = "0.1.0"

__all__ = ["operators", "models", "__version__"]
