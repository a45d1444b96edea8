"""One command for a machine with a CUDA GPU: the KP engine's identities in float64, then the
KP benchmark (bench/kp.py) in float32, each printed as one markdown table.

(a) Identities, float64 on the GPU, for gdlens' RNN, GRU and LSTM and for
    gd.models.from_torch of 1- and 2-layer nn.GRU / nn.LSTM (and a 1-layer nn.RNN):
      K, P, Pᵀ, G, ntk   ‖A v − A_ref v‖ / ‖A_ref v‖, A from gd.KPFlow(...) (closed forms
                         where the engine has them) and A_ref from gd.KPFlow(..., fast=False)
                         (the generic JVP/VJP paths), on 3 random probes
      adjoint            |⟨P x, y⟩ − ⟨x, Pᵀ y⟩| / (‖P x‖ ‖y‖)
      step_check         kp.step_check(lr).rel_error for lr = 1e-2, 1e-3, 1e-4: one SGD step
                         against −lr·G e; the error is O(lr), so it must shrink with lr
    Pass: every relative error ≤ 1e-8, adjoint ≤ 1e-12, step errors falling ≥ 3× per decade.
(b) The KP benchmark of bench/kp.py on the GPU, float32, B = 32: (T, H) = (50, 256) and
    (200, 1024), GRU first, then LSTM and RNN; native gdlens rows and from_torch 1L / 2L.
    Ratios are to the fused cuDNN training step of the matching torch model; the targets in
    the last column are the CPU ones (see bench/kp.py), printed for reference.

The run keeps to --budget seconds (default 330): a benchmark row or column that would start
(or, by a rough estimate, end) past it is skipped and printed as "—".

Run:  python bench/gpu.py [--budget 330] [--repeats 3] [--json PATH]
      python bench/gpu.py --allow-cpu    (no GPU: the same code on the CPU at tiny sizes)
Without a CUDA device (and without --allow-cpu) it prints why and exits with status 0.
Exit status 1 when an identity fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kp as kpbench  # noqa: E402  (bench/kp.py)

import gdlens as gd  # noqa: E402

IDENTITY_ROWS = [kpbench.Row(k, 0, 0) for k in ("rnn", "gru", "lstm")] + [
    kpbench.Row("gru", 0, 1), kpbench.Row("gru", 0, 2), kpbench.Row("lstm", 0, 1), kpbench.Row("lstm", 0, 2),
    kpbench.Row("rnn", 0, 1),
]
LRS = (1e-2, 1e-3, 1e-4)
REL_TOL, ADJOINT_TOL, STEP_DROP = 1e-8, 1e-12, 3.0


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


def identities(row: kpbench.Row, setting: kpbench.Setting) -> dict:
    """Closed form vs generic path, the adjoint identity and the SGD step check of one model."""
    device, dtype = setting.torch_device, setting.torch_dtype
    x, target = kpbench.data(setting)
    model = kpbench.gdlens_model(row, setting)
    kp = gd.KPFlow(model, x, target, loss="mse")
    ref = gd.KPFlow(model, x, target, loss="mse", fast=False)
    gen = torch.Generator(device=device).manual_seed(0)
    V = torch.randn(3, *kp.shape, generator=gen, device=device, dtype=dtype)
    W = torch.randn(3, *kp.ntk.shape_in, generator=gen, device=device, dtype=dtype)
    out = {"name": row.name, "H": row.H, "path": str(getattr(kp, "_closed_form", "?") or "generic"), "rel": {}}
    for name, A, B, probes in (("K", kp.K, ref.K, V), ("P", kp.P, ref.P, V), ("Pᵀ", kp.P.T, ref.P.T, V),
                               ("G", kp.G, ref.G, V), ("ntk", kp.ntk, ref.ntk, W)):
        exact = B @ probes
        out["rel"][name] = _norm(A @ probes - exact) / max(_norm(exact), 1e-300)
    u, w = V[0], V[1]
    Pu = kp.P @ u
    out["adjoint"] = abs(float((Pu * w).sum() - (u * (kp.P.T @ w)).sum())) / max(_norm(Pu) * _norm(w), 1e-300)
    out["step"] = [kp.step_check(lr).rel_error for lr in LRS]
    drops = [a / b if b > 0 else math.inf for a, b in zip(out["step"], out["step"][1:])]
    out["ok"] = (all(r <= REL_TOL for r in out["rel"].values()) and out["adjoint"] <= ADJOINT_TOL
                 and all(d >= STEP_DROP for d in drops))
    return out


def identities_table(results: list[dict]) -> str:
    header = ["model", "H", "fast path", "K", "P", "Pᵀ", "G", "ntk", "adjoint",
              "step_check lr=" + ", ".join(f"{lr:g}" for lr in LRS), "ok"]
    lines = []
    for r in results:
        if "error" in r:
            lines.append([r["name"], str(r["H"]), "—", *["—"] * 7, f"FAILED: {r['error']}"])
            continue
        lines.append([r["name"], str(r["H"]), r["path"], *(f"{v:.1e}" for v in r["rel"].values()),
                      f"{r['adjoint']:.1e}", ", ".join(f"{e:.1e}" for e in r["step"]), "pass" if r["ok"] else "FAIL"])
    return kpbench.markdown(header, lines)


def bench_plan(tiny: bool) -> list[tuple[kpbench.Row, kpbench.Setting]]:
    """(row, setting) in order of priority: GRU at both sizes first."""
    sizes = [(4, 8, 16)] if tiny else [(32, 50, 256), (32, 200, 1024)]
    plan = []
    for kind in ("gru", "lstm", "rnn"):
        for B, T, H in sizes:
            for layers in (0, 1, 2):
                plan.append((kpbench.Row(kind, H, layers), (B, T)))
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=330.0, help="seconds for the whole run (default 330)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--allow-cpu", action="store_true", help="without a GPU, run on the CPU at tiny sizes")
    parser.add_argument("--json", metavar="PATH", help="write every measurement to PATH")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget
    if torch.cuda.is_available():
        device, tiny = "cuda", False
    elif args.allow_cpu:
        device, tiny = "cpu", True
        torch.set_num_threads(1)
    else:
        print("bench/gpu.py: SKIPPED: no CUDA device (torch.cuda.is_available() is False, torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}). Run it on a machine with a GPU, "
              "or pass --allow-cpu for a smoke run on the CPU at tiny sizes.")
        return 0
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (--allow-cpu, tiny sizes)"
    cudnn = torch.backends.cudnn.version() if device == "cuda" else None
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {cudnn}, device {name}, "
          f"budget {args.budget:.0f} s\n", flush=True)

    # (a) identities in float64
    H, B, T = (8, 3, 6) if tiny else (32, 4, 20)
    id_setting = kpbench.Setting(B=B, T=T, repeats=1, device=device, dtype="float64")
    checks = []
    for row in IDENTITY_ROWS:
        row = kpbench.Row(row.kind, H, row.layers)
        try:
            checks.append(identities(row, id_setting))
        except Exception as err:  # report and go on: the benchmark still runs
            checks.append({"name": row.name, "H": H, "error": f"{type(err).__name__}: {err}"[:200]})
    print(f"(a) identities, float64, B={B}, T={T}: relative error of the fast path against fast=False "
          f"(pass: ≤ {REL_TOL:g}; adjoint ≤ {ADJOINT_TOL:g}; step_check error falling ≥ {STEP_DROP:g}× "
          f"per decade of lr)\n\n" + identities_table(checks) + "\n", flush=True)
    print(f"    ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)

    # (b) the benchmark in float32
    results, skipped = [], []
    for row, (B, T) in bench_plan(tiny):
        if time.perf_counter() > deadline:
            skipped.append(f"{row.name} H={row.H} T={T}")
            continue
        setting = kpbench.Setting(B=B, T=T, repeats=1 if tiny else args.repeats, device=device)
        t0 = time.perf_counter()
        try:
            results.append(kpbench.bench_row(row, setting, deadline, memory=True))
        except Exception as err:
            skipped.append(f"{row.name} H={row.H} T={T} ({type(err).__name__}: {str(err)[:120]})")
        seconds = time.perf_counter() - t0
        print(f"    {row.name:<18} H={row.H:<5} T={T:<4} {seconds:6.1f} s", file=sys.stderr, flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    print("(b) KP benchmark, float32: costs in fused training steps of the matching torch model (medians; "
          "eigs: matvecs used); ×native: from_torch / native seconds; targets: the CPU ones of bench/kp.py\n\n"
          + kpbench.summary_table(results), flush=True)
    if skipped:
        print(f"\nnot run within the budget: {'; '.join(skipped)}")
    partial = sorted({c for r in results for c in r["skipped"]})
    if partial:
        print(f"columns skipped within the budget (printed —): {', '.join(partial)}")
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        for r in results:
            r["vs_native"], r["targets"] = kpbench.vs_native(r, results), kpbench.targets(r, results)
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "identities": checks, "results": results,
                       "not_run": skipped}, f, indent=1, default=str)
    return 0 if all(c.get("ok") for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
