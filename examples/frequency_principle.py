"""The frequency principle: a network fits the low frequencies of its target first
(Xu, Zhang, Luo, Xiao & Ma, arXiv 1901.06523; Rahaman et al., arXiv 1806.08734).

A thin caller of the registry entry ``frequency-principle`` (``gdlens reproduce
frequency-principle``): the target is sin(x) + sin(3x) + sin(5x) on 201 grid points of
[−π, π]; the FrequencyProbe records, at log-spaced steps, the relative error
|ĥ_k − ŷ_k| / |ŷ_k| of the prediction's DFT at each spectral peak k of the target. The step
from which each error stays below 10% comes out ordered by frequency. Runs land in
./gdlens-runs.

    python examples/frequency_principle.py   # one seed of the small size: about 15 s on one CPU thread
Writes frequency_principle.png (the error per frequency over training) and
frequency_principle.html (the claims table beside the figure).
"""

from __future__ import annotations

import gdlens as gd
from gdlens.store.views import format_table

result = gd.reproduce("frequency-principle", size="small", seeds=1, out="frequency_principle.html")
print(result.entry.citation)
print(format_table(*result.table()))
assert all(c["holds"] for c in result.claims), "low frequencies first"

result.entry.figure(result.measurements).savefig("frequency_principle.png", dpi=80)
print("wrote frequency_principle.png and frequency_principle.html (result.json beside it)")
