"""Operator-core benchmark: ratios measured in one run on this machine.

1. One batched call with 32 probes vs 32 single calls, for a dense operator and for a
   matrix-free Jacobian Gram (the NTK J Jᵀ of an MLP via torch.func vjp/jvp).
2. ``top_eigs(k=10)`` (batched block Lanczos) vs dense ``torch.linalg.eigh`` at n = 4000:
   time ratio and eigenvalue error.
3. ``top_eigs(K, 5)`` and ``top_eigs(G, 5)`` of ``gd.models.GRU(3, 256, 3)`` at B=32, T=50
   (float32, one thread) in units of one fused ``nn.GRU`` training step (forward, MSE, backward
   on the same shapes; targets ≤ 60): matvecs (vectors), batched calls and CPU time; the cost
   of ``K @ V`` per vector for blocks of 1, 4, 8, 16; then cold and warm-started
   ``top_eigs(G, 5)`` along an Adam run (target for a warm call ≤ 15 steps in the KP probe).

Run:  python bench/operators.py [--repeats 5] [--n 4000] [--no-kp]
Absolute times on a shared 2-core machine are noise; the ratios are the signal.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from gdlens.operators import CallableOperator, DenseOperator, LinearOperator, top_eigs


def median_time(fn: Callable[[], object], repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def mlp_ntk_operator(batch: int = 64, width: int = 256, depth: int = 3, dtype=torch.float32) -> LinearOperator:
    """K = J Jᵀ on outputs (batch, 10) of an MLP, J = ∂f/∂θ, applied as a VJP then a JVP."""
    torch.manual_seed(0)
    sizes = [32] + [width] * depth + [10]
    params = [torch.randn(o, i, dtype=dtype) / i**0.5 for i, o in zip(sizes[:-1], sizes[1:])]
    x = torch.randn(batch, 32, dtype=dtype)

    def f(ps: list[torch.Tensor]) -> torch.Tensor:
        h = x
        for W in ps[:-1]:
            h = torch.tanh(h @ W.T)
        return h @ ps[-1].T

    _, vjp_fn = torch.func.vjp(f, params)

    def one(v: torch.Tensor) -> torch.Tensor:
        (tangent,) = vjp_fn(v)
        return torch.func.jvp(f, (params,), (tangent,))[1]

    return CallableOperator(one, (batch, 10), batched=False, is_symmetric=True, dtype=dtype)


def bench_batching(repeats: int) -> None:
    print("1. 32 probes: one batched call vs 32 single calls (median of repeats)")
    torch.manual_seed(0)
    cases = {
        "dense 2000x2000 (float32)": DenseOperator(torch.randn(2000, 2000)),
        "MLP NTK J Jᵀ, matrix-free (float32)": mlp_ntk_operator(),
    }
    for name, A in cases.items():
        X = torch.randn(32, *A.shape_in, dtype=A.dtype)
        t_batched = median_time(lambda: A @ X, repeats)
        t_single = median_time(lambda: [A @ X[i] for i in range(32)], repeats)
        print(f"   {name:<38} batched {t_batched * 1e3:8.2f} ms   32 singles {t_single * 1e3:8.2f} ms   "
              f"speed-up {t_single / t_batched:5.1f}x  (target >= 4x)")


def bench_top_eigs(n: int, repeats: int) -> None:
    print(f"\n2. top_eigs(k=10) vs dense eigh at n = {n} (float64)")
    gen = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    lam = 1.0 / torch.arange(1, n + 1, dtype=torch.float64)
    M = (U * lam) @ U.T
    M = (M + M.T) / 2
    A = DenseOperator(M, is_symmetric=True)
    t0 = time.perf_counter()
    ref = torch.linalg.eigh(M).eigenvalues.flip(0)[:10]
    t_dense = time.perf_counter() - t0  # one call: a dense eigh has nothing to warm up
    t_ours = median_time(lambda: top_eigs(A, 10), repeats)
    (values, _), info = top_eigs(A, 10, return_info=True)
    err_ref = float((values - ref).abs().max())
    err_truth = float((values - lam[:10]).abs().max())
    print(f"   dense eigh {t_dense:7.3f} s   top_eigs {t_ours:7.3f} s ({info['num_matvecs']} matvecs)   "
          f"speed-up {t_dense / t_ours:5.1f}x")
    print(f"   max |λ_ours − λ_eigh| = {err_ref:.1e}   max |λ_ours − λ_true| = {err_truth:.1e}")


def cpu_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median CPU time of fn (one thread: less sensitive to a shared machine's load) and its
    last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return statistics.median(times), out


def gru_step_time(B: int, T: int, H: int, repeats: int) -> float:
    """One fused torch training step: nn.GRU + nn.Linear forward, MSE, backward."""
    torch.manual_seed(0)
    rnn, lin = torch.nn.GRU(3, H, batch_first=True), torch.nn.Linear(H, 3)
    x, y = torch.randn(B, T, 3), torch.randn(B, T, 3)

    def step() -> None:
        rnn.zero_grad()
        lin.zero_grad()
        ((lin(rnn(x)[0]) - y) ** 2).mean().backward()

    step()
    return cpu_time(step, 2 * repeats + 1)[0]


def bench_kp_eigs(repeats: int, B: int = 32, T: int = 50, H: int = 256) -> None:
    import gdlens as gd

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    unit = gru_step_time(B, T, H, repeats)
    print(f"\n3. top_eigs on K and G of gd.models.GRU(3, {H}, 3), B={B}, T={T}, float32, 1 thread; "
          f"unit: one nn.GRU training step = {unit * 1e3:.1f} ms")
    torch.manual_seed(0)
    model = gd.models.GRU(input_size=3, hidden_size=H, output_size=3)
    x, target = torch.randn(B, T, 3), torch.randn(B, T, 3)
    kp = gd.KPFlow(model, x, target)
    for m in (1, 4, 8, 16):
        V = torch.randn(m, *kp.K.shape_in)
        t = cpu_time(lambda: kp.K @ V, repeats)[0]
        print(f"   K @ V, {m:2d} vectors: {t / unit / m:5.2f} steps per vector")
    for name, A in (("K", kp.K), ("G", kp.G)):
        for block in (None, 1):
            t, (_, info) = cpu_time(lambda: top_eigs(A, 5, block_size=block, return_info=True), repeats)
            label = "default block" if block is None else f"block {block}"
            print(f"   top_eigs({name}, 5), {label:<13} {info['num_matvecs']:4d} matvecs in "
                  f"{info['num_calls']:3d} calls, {t / unit:5.1f} steps (target <= 60)")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    done, previous = 0, None
    for step in (0, 1, 3, 10, 30, 100):
        for _ in range(step - done):
            opt.zero_grad()
            ((model(x)[0] - target) ** 2).mean().backward()
            opt.step()
        done = step
        G = gd.KPFlow(model, x, target).G
        tc, (_, cold) = cpu_time(lambda: top_eigs(G, 5, return_info=True), 1)
        tw, ((_, vectors), warm) = cpu_time(lambda: top_eigs(G, 5, v0=previous, return_info=True), 1)
        previous = vectors
        print(f"   Adam step {step:3d}: top_eigs(G, 5) cold {cold['num_matvecs']:3d} matvecs {tc / unit:5.1f} steps, "
              f"warm {warm['num_matvecs']:3d} matvecs {tw / unit:5.1f} steps")
    torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--no-kp", action="store_true", help="skip section 3 (the GRU's K and G)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    bench_batching(args.repeats)
    bench_top_eigs(args.n, args.repeats)
    if not args.no_kp:
        bench_kp_eigs(max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
