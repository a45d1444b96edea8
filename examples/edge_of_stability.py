"""Edge of stability: under full-batch gradient descent with step η, the sharpness λ_max of the
training loss rises until it reaches 2/η and then hovers there while the loss keeps falling,
non-monotonically (Cohen, Kaur, Li, Kolter & Talwalkar, arXiv 2103.00065). Started above 2/η,
it is thrown down to it within a few steps (the catapult, Lewkowycz et al., arXiv 2003.02218).

A thin caller of the registry entry ``edge-of-stability`` (``gdlens reproduce
edge-of-stability``): a tanh MLP on a teacher-student regression at η = 0.1, 0.3, 0.8; the
SharpnessProbe computes λ_max by Lanczos on Hessian–vector products every 100 steps. Runs land
in ./gdlens-runs.

    python examples/edge_of_stability.py    # one seed of the small size: about 15 s on one CPU thread
Writes edge_of_stability.png (loss, and λ_max against 2/η for each step size) and
edge_of_stability.html (the claims table beside the figure).
"""

from __future__ import annotations

import gdlens as gd
from gdlens.store.views import format_table

result = gd.reproduce("edge-of-stability", size="small", seeds=1, out="edge_of_stability.html")
print(result.entry.citation)
print(format_table(*result.table()))
# the larger steps sit at their threshold, the small one sharpens below it
assert result.claim("eta_lambda_over_2")["holds"] and result.claim("sharpening")["holds"]

result.entry.figure(result.measurements).savefig("edge_of_stability.png", dpi=80)
print("wrote edge_of_stability.png and edge_of_stability.html (result.json beside it)")
