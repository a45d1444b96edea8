"""KP-engine benchmark in the user's units: what the KP operators cost next to one training
step of the user's own model as torch runs it, measured in one run on this machine.

The unit ("step") is one training step of ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN`` (batch_first,
torch's fused kernels) with an ``nn.Linear`` readout: forward, the MSE loss gdlens uses
(Σ over time and outputs, mean over the batch) and backward, at the same B, T, H, float32.
Each row is compared with the fused step of the matching torch model (same cell, width and
number of layers; the native gdlens row with the 1-layer step of its cell).

Rows (models), for each cell and width H:
  native           gd.models.GRU / LSTM / RNN(tanh)
  from_torch 1L    gd.models.from_torch(nn.GRU(..., num_layers=1), readout=nn.Linear(H, O))
  from_torch 2L    the same with num_layers=2
  LRU native       gd.models.LRU(I, H/2 modes, O): torch has no LRU, so its unit is the
                   training step of this same model as torch runs it (forward + backward)
  SELECTIVE native gd.models.SelectiveLRU(I, H, O), its own training step likewise
  LRU-STACK native gd.models.StackedLRU(I, d=H/2, H/4 modes, O, 2 layers, MLP width H) (state
                   2H), its own training step likewise
  TRANSFORMER from_torch
                   gd.models.from_torch_transformer of nn.TransformerEncoder(2 pre-LN layers
                   (norm_first=True), d = H, 4 heads (2 below H = 64), d_mlp = 4H, final LayerNorm),
                   causal, with an nn.Linear(H, O) head read at every position; x embeddings
                   (B, n = T, H); the unit is the fused training step of that torch encoder
                   and head. Its "T" of the recursion is depth (2), its state n·H per example
Columns (medians over --repeats after a warm-up call; hutch++ and eigs, whose matvecs are then
warm, over max(1, repeats // 2) calls without one; printed as multiples of the step):
  setup      gd.KPFlow(model, x, target) and building its operators (kp.G, kp.ntk)
  K·1 P·1 Pᵀ·1 G·1 ntk·1   one matvec (ntk on the output shape (B, T, O))
  G·20       20 probes in one batched call
  hutch++    Hutch++ trace of G with 30 matvecs
  eigs(K,5)  top_eigs(K, 5), eigs(G,5) top_eigs(G, 5), with their numbers of matvecs ("mv");
             capped at 300 matvecs (top_eigs' max_matvecs), beyond which the cell says
             NOT CONVERGED and the time is that of the capped call
  mem        peak memory of a G matvec / peak memory of a training step (CPU: resident
             memory above the pre-call level, in a child process whose allocator returns
             freed memory; CUDA: torch.cuda.max_memory_allocated above the pre-call level)
and, for each from_torch row, its time / the native row's time at the same width.

Targets (CPU, float32, one thread, B=32, T=50, GRU H=256, in steps of the fused nn.GRU):
  from_torch 1L: K, P, Pᵀ, G, ntk each ≤ 1.25× the native model's time
  from_torch 2L: K, P, Pᵀ, G, ntk each ≤ 2.5× the native (one-layer) model's time
  G·20 ≤ 15 steps (native and from_torch); eigs(K,5) ≤ 60 and eigs(G,5) ≤ 60 steps;
  peak memory of a G matvec ≤ 3× a training step's.
They are checked on every row measured and printed beside the medians (met / NOT MET).

Run:  python bench/kp.py [--widths 128 256] [--models gru lstm rnn] [--layers 1 2]
                         [--repeats 3] [--device cpu|cuda] [--threads 1] [--big] [--json PATH]
      python bench/kp.py --quick          (smoke run: tiny sizes, one repeat, < 30 s)
Absolute times on a shared machine are noise; the ratios are the signal.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

import gdlens as gd
from gdlens.operators import top_eigs, trace

KINDS = ("gru", "lstm", "rnn", "lru", "selective", "lru-stack", "transformer")
# gdlens models torch has no module for: their unit is their own training step, native rows only
OWN_STEP = ("lru", "selective", "lru-stack")
TRANSFORMER_DEPTH = 2
TORCH_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}
INPUT, OUTPUT = 3, 2
OPERATORS = ("K·1", "P·1", "Pᵀ·1", "G·1", "ntk·1")
COLUMNS = ("setup", *OPERATORS, "G·20", "hutch++", "eigs(K,5)", "eigs(G,5)")
EIGS_MAX_MATVECS = 300  # top_eigs' own default, max(50 n, 1000), runs for hours where it stalls

# targets, in the units above
VS_NATIVE = {1: 1.25, 2: 2.5}  # from_torch time / native time, per operator, by number of layers
STEP_TARGETS = {"G·20": 15.0, "eigs(K,5)": 60.0, "eigs(G,5)": 60.0}
MEMORY_TARGET = 3.0
TARGET_SETTING = "CPU, float32, one thread, B=32, T=50, GRU H=256"


# ---------------------------------------------------------------------- what is measured
@dataclass(frozen=True)
class Row:
    """One model: ``layers`` = 0 for the native gdlens model, else from_torch of that depth."""

    kind: str
    H: int
    layers: int

    @property
    def name(self) -> str:
        if self.kind == "transformer":
            return "TRANSFORMER from_torch"
        return f"{self.kind.upper()} " + ("native" if self.layers == 0 else f"from_torch {self.layers}L")

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.H}-{self.layers}"


@dataclass(frozen=True)
class Setting:
    B: int = 32
    T: int = 50
    repeats: int = 3
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def rows_for(kinds: list[str], widths: list[int], layers: list[int]) -> list[Row]:
    """For each cell and width: the native model, then from_torch of each depth (torch has no
    LRU modules: their rows are the native model only; the transformer has one row, from_torch
    of a 2-layer encoder)."""
    return [Row(kind, H, n) for kind in kinds for H in widths for n in [0, *(layers if kind in TORCH_CELLS else [])]]


def data(setting: Setting, row: Row | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, I) and target (B, T, O); for the transformer x are embeddings (B, n = T, H)."""
    gen = torch.Generator().manual_seed(1)
    width = row.H if row is not None and row.kind == "transformer" else INPUT
    x = torch.randn(setting.B, setting.T, width, generator=gen, dtype=setting.torch_dtype)
    target = torch.randn(setting.B, setting.T, OUTPUT, generator=gen, dtype=setting.torch_dtype)
    return x.to(setting.torch_device), target.to(setting.torch_device)


def torch_model(kind: str, H: int, layers: int, setting: Setting) -> tuple[nn.Module, nn.Linear]:
    """The user's model: a fused torch RNN (batch_first) and its linear readout; for "lru",
    which torch does not have, gdlens' own LRU (its readout inside, an identity after it)."""
    torch.manual_seed(0)
    kw = dict(device=setting.torch_device, dtype=setting.torch_dtype)
    if kind in OWN_STEP:
        return own_model(kind, H).to(**kw), nn.Identity()
    if kind == "transformer":
        layer = nn.TransformerEncoderLayer(H, 4 if H >= 64 else 2, 4 * H, dropout=0.0, batch_first=True,
                                           norm_first=True)
        encoder = nn.TransformerEncoder(layer, TRANSFORMER_DEPTH, norm=nn.LayerNorm(H), enable_nested_tensor=False)
        return CausalEncoder(encoder).to(**kw), nn.Linear(H, OUTPUT).to(**kw)
    module = TORCH_CELLS[kind](INPUT, H, num_layers=layers, batch_first=True)
    readout = nn.Linear(H, OUTPUT)
    return module.to(**kw), readout.to(**kw)


def own_model(kind: str, H: int) -> nn.Module:
    """The gdlens models torch has no module for, with a state of about H per step."""
    if kind == "lru":
        return gd.models.LRU(INPUT, H // 2, OUTPUT, r_min=0.5)
    if kind == "selective":
        return gd.models.SelectiveLRU(INPUT, H, OUTPUT)
    return gd.models.StackedLRU(INPUT, max(1, H // 2), max(1, H // 4), OUTPUT, layers=2, mlp=H, r_min=0.5)


class CausalEncoder(nn.Module):
    """torch's encoder with a causal mask, returning (output, None) like a torch RNN."""

    def __init__(self, encoder: nn.TransformerEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)
        return self.encoder(x, mask=mask, is_causal=True), None


def gdlens_model(row: Row, setting: Setting, module: nn.Module | None = None, readout: nn.Linear | None = None):
    """The native gdlens model of the row's cell, or ``from_torch(module, readout=readout)``."""
    if row.layers == 0:
        torch.manual_seed(0)
        if row.kind == "gru":
            model = gd.models.GRU(INPUT, row.H, OUTPUT)
        elif row.kind == "lstm":
            model = gd.models.LSTM(INPUT, row.H, OUTPUT)
        elif row.kind in OWN_STEP:
            return module if module is not None else torch_model(row.kind, row.H, 1, setting)[0]
        elif row.kind == "transformer":
            if module is None or readout is None:
                module, readout = torch_model(row.kind, row.H, 1, setting)
            return gd.models.from_torch_transformer(module.encoder, setting.T, head=readout, causal=True)
        else:
            model = gd.models.RNN(INPUT, row.H, OUTPUT, nonlinearity="tanh")
        return model.to(device=setting.torch_device, dtype=setting.torch_dtype)
    if module is None or readout is None:
        module, readout = torch_model(row.kind, row.H, row.layers, setting)
    return gd.models.from_torch(module, readout=readout)


def mse(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """gdlens' loss="mse": Σ over time and outputs, mean over the batch, no ½."""
    return (y - target).pow(2).sum() / y.shape[0]


def training_step(module: nn.Module, readout: nn.Linear, x: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    params = [*module.parameters(), *readout.parameters()]

    def step() -> None:
        for p in params:
            p.grad = None
        y, _ = module(x)
        mse(readout(y), target).backward()

    return step


def build_flow(model, x: torch.Tensor, target: torch.Tensor):
    """The setup that is timed: the KPFlow and its operators (which may linearise lazily)."""
    kp = gd.KPFlow(model, x, target, loss="mse")
    kp.G, kp.ntk  # noqa: B018
    return kp


# ---------------------------------------------------------------------- timing and memory
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], repeats: int, device: torch.device, warmup: bool = True) -> float:
    if warmup:
        fn()
        sync(device)
    times = []
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1)) / 1024


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory (MB) above the level before the call, after one warm-up call: CUDA
    allocated memory, or on CPU the resident set (Linux VmHWM; NaN elsewhere)."""
    fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return float("nan")
    before = _status_mb("VmRSS")
    fn()
    return _status_mb("VmHWM") - before


def memory_of_rows(rows: list[Row], setting: Setting) -> dict[str, dict[str, float]]:
    """{row.key: {"step": MB, "G·1": MB}}: peak memory of the training step and of a G matvec."""
    device = setting.torch_device
    out = {}
    for row in rows:
        x, target = data(setting, row)
        module, readout = torch_model(row.kind, row.H, max(1, row.layers), setting)
        step_mb = peak_memory_mb(training_step(module, readout, x, target), device)
        kp = build_flow(gdlens_model(row, setting, module, readout), x, target)
        v = torch.randn(kp.shape, device=device, dtype=setting.torch_dtype)
        G = kp.G
        out[row.key] = {"step": step_mb, "G·1": peak_memory_mb(lambda: G @ v, device)}
        del module, readout, kp, G, v  # freed by reference counting (gc.collect costs 0.3 s here)
    return out


def memory_in_subprocess(rows: list[Row], setting: Setting, threads: int) -> dict[str, dict[str, float]]:
    """CPU peak memories, measured in one child process whose glibc malloc returns every freed
    block above 64 KiB to the OS (MALLOC_MMAP_THRESHOLD_), so that VmHWM tracks live tensors.
    The timings are taken in this process, whose allocator is left alone (mmap per allocation
    is far slower)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    spec = json.dumps({"rows": [asdict(r) for r in rows], "setting": asdict(setting), "threads": threads})
    done = subprocess.run([sys.executable, __file__, "--memory-child", spec], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"(memory child failed: {done.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_row(row: Row, setting: Setting, deadline: float | None = None, memory: bool = False) -> dict:
    """Median seconds of the training step and of every column, the matvecs of the two
    top_eigs calls, and (``memory=True``, for CUDA) the peak memories. Columns not started
    before ``deadline`` (a time.perf_counter() value) are skipped and left NaN."""
    device, dtype, repeats = setting.torch_device, setting.torch_dtype, setting.repeats
    x, target = data(setting, row)
    module, readout = torch_model(row.kind, row.H, max(1, row.layers), setting)
    model = gdlens_model(row, setting, module, readout)
    result = {**asdict(row), "name": row.name, "B": setting.B, "T": setting.T, "device": setting.device,
              "times": {}, "matvecs": {}, "converged": {}, "memory": {}, "skipped": []}
    result["theta_size"] = sum(p.numel() for p in model.state_params().values())
    times, matvecs = result["times"], result["matvecs"]
    step = training_step(module, readout, x, target)
    times["step"] = median_time(step, repeats, device)

    def late(name: str, estimate: float = 0.0) -> bool:
        """Skip ``name`` if it would start, or by ``estimate`` seconds end, past the deadline."""
        if deadline is not None and time.perf_counter() + estimate > deadline:
            times[name] = math.nan
            result["skipped"].append(name)
            return True
        return False

    if not late("setup"):
        times["setup"] = median_time(lambda: build_flow(model, x, target), repeats, device)
    kp = build_flow(model, x, target)
    K, P, PT, G, ntk = kp.K, kp.P, kp.P.T, kp.G, kp.ntk
    torch.manual_seed(2)
    v = torch.randn(kp.shape, device=device, dtype=dtype)
    w = torch.randn(ntk.shape_in, device=device, dtype=dtype)
    v20 = torch.randn(20, *kp.shape, device=device, dtype=dtype)
    fast = {"K·1": lambda: K @ v, "P·1": lambda: P @ v, "Pᵀ·1": lambda: PT @ v, "G·1": lambda: G @ v,
            "ntk·1": lambda: ntk @ w, "G·20": lambda: G @ v20}
    for name, fn in fast.items():
        if not late(name):
            times[name] = median_time(fn, repeats, device)
    slow_repeats = max(1, repeats // 2)  # the matvecs inside are warm; each call is long
    block = times.get("G·20", math.nan)  # a rough unit for the estimates below (0 when unknown)
    block = 0.0 if math.isnan(block) else block
    if not late("hutch++", 2 * block * slow_repeats):
        times["hutch++"] = median_time(lambda: trace(G, method="hutch++", num_matvecs=30, seed=0),
                                       slow_repeats, device, warmup=False)
    for name, A in (("eigs(K,5)", K), ("eigs(G,5)", G)):
        if late(name, 25 * block * slow_repeats):  # tens of block calls of ≤ 20 probes
            continue
        info = {}

        def eigs(A=A, info=info) -> None:
            with warnings.catch_warnings():  # a spent budget warns; it is reported in the table
                warnings.simplefilter("ignore")
                _, info["info"] = top_eigs(A, 5, seed=0, max_matvecs=EIGS_MAX_MATVECS, return_info=True)

        times[name] = median_time(eigs, slow_repeats, device, warmup=False)
        matvecs[name] = int(info["info"]["num_matvecs"])
        result["converged"][name] = bool(info["info"].get("converged", True))
    if memory:
        result["memory"] = {"step": peak_memory_mb(step, device), "G·1": peak_memory_mb(lambda: G @ v, device)}
    return result


# ---------------------------------------------------------------------- ratios and targets
def native_of(result: dict, results: list[dict]) -> dict | None:
    for other in results:
        if (other["layers"] == 0 and other["kind"] == result["kind"] and other["H"] == result["H"]
                and other["T"] == result["T"] and other["B"] == result["B"]):
            return other
    return None


def in_steps(result: dict, column: str) -> float:
    return result["times"].get(column, math.nan) / result["times"]["step"]


def vs_native(result: dict, results: list[dict]) -> dict[str, float]:
    """This row's time / the native row's time at the same size, per column (from_torch rows)."""
    native = native_of(result, results)
    if result["layers"] == 0 or native is None:
        return {}
    return {c: result["times"].get(c, math.nan) / native["times"].get(c, math.nan) for c in COLUMNS}


def memory_ratio(result: dict) -> float:
    mem = result.get("memory") or {}
    if "step" not in mem:
        return math.nan
    floor = 1.0 if result["device"] == "cpu" else 1e-3  # RSS is page-grained: 1 MB is noise
    return mem["G·1"] / max(mem["step"], floor)


def targets(result: dict, results: list[dict]) -> list[dict]:
    """Each target of this row: {"target", "measured", "limit", "met"} (met None: not measured)."""
    out = []

    def add(target: str, measured: float, limit: float, detail: str = "", failed: bool = False) -> None:
        met = None if math.isnan(measured) else bool(measured <= limit) and not failed
        out.append({"target": target, "measured": measured, "limit": limit, "met": met, "detail": detail})

    ratios = vs_native(result, results)
    if ratios:
        limit = VS_NATIVE.get(result["layers"], VS_NATIVE[2] * result["layers"] / 2)
        ops = {op: ratios[op] for op in OPERATORS}
        worst = max(ops, key=lambda op: -math.inf if math.isnan(ops[op]) else ops[op])
        add(f"K,P,Pᵀ,G,ntk ≤ {limit:g}× native", ops[worst], limit, worst)
    for column, limit in STEP_TARGETS.items():
        stalled = not result.get("converged", {}).get(column, True)  # a capped top_eigs has no answer
        add(f"{column} ≤ {limit:g} steps", in_steps(result, column), limit, "not converged" if stalled else "",
            stalled)
    add(f"mem G·1 ≤ {MEMORY_TARGET:g}× step", memory_ratio(result), MEMORY_TARGET)
    return out


def mark(met: bool | None) -> str:
    return "skipped" if met is None else ("met" if met else "NOT MET")


def fmt(value: float, suffix: str = "") -> str:
    if value is None or math.isnan(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:.0f}{suffix}"
    return f"{value:.2f}{suffix}" if abs(value) < 10 else f"{value:.1f}{suffix}"


def markdown(header: list[str], lines: list[list[str]]) -> str:
    rows = [header, ["---"] * len(header), *lines]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def summary_table(results: list[dict]) -> str:
    """One markdown table: every column in steps, the worst operator against the native row,
    and the targets met."""
    header = ["model", "B", "T", "H", "step ms", *COLUMNS, "mem G·1/step", "×native (K..ntk)", "targets"]
    lines = []
    for r in results:
        cells = [r["name"], str(r["B"]), str(r["T"]), str(r["H"]), fmt(r["times"]["step"] * 1e3)]
        for c in COLUMNS:
            cell = fmt(in_steps(r, c))
            if c in r["matvecs"]:
                stalled = "" if r["converged"].get(c, True) else ", NOT CONVERGED"
                cell += f" ({r['matvecs'][c]} mv{stalled})"
            cells.append(cell)
        cells.append(fmt(memory_ratio(r)))
        checks = targets(r, results)
        worst = [t for t in checks if t["target"].startswith("K,P")]
        cells.append(f"{fmt(worst[0]['measured'])} ({worst[0]['detail']})" if worst else "—")
        failed = [t["target"].split(" ≤")[0] for t in checks if t["met"] is False]
        measured = [t for t in checks if t["met"] is not None]
        cells.append(f"{len(measured) - len(failed)}/{len(measured)} met"
                     + (f"; NOT MET: {', '.join(failed)}" if failed else ""))
        lines.append(cells)
    return markdown(header, lines)


def native_table(results: list[dict]) -> str:
    # |θ| / native |θ|: a K matvec costs O(B·T·|θ|) flops, so this ratio is the floor of K's
    # ratio (a second layer reads an H-wide input: two layers hold about 3× one layer's θ)
    header = ["model", "T", "H", *COLUMNS, "|θ| ×native", "target (K..ntk)"]
    lines = []
    for r in results:
        ratios = vs_native(r, results)
        if not ratios:
            continue
        limit = VS_NATIVE.get(r["layers"], VS_NATIVE[2] * r["layers"] / 2)
        cells = [fmt(ratios[c], "×") for c in COLUMNS]
        native = native_of(r, results)
        size = r.get("theta_size", math.nan) / native.get("theta_size", math.nan) if native else math.nan
        lines.append([r["name"], str(r["T"]), str(r["H"]), *cells, fmt(size, "×"), f"≤ {limit:g}×"])
    return markdown(header, lines)


def targets_table(results: list[dict]) -> str:
    """One line per row: each target's limit in the header, the measured median and its mark
    in the cell (the vs-native cell names the worst operator)."""
    limits = ", ".join(f"{n}L ≤ {v:g}×" for n, v in VS_NATIVE.items())
    header = ["model", "T", "H", f"K,P,Pᵀ,G,ntk vs native ({limits})",
              *(f"{c} ≤ {v:g} steps" for c, v in STEP_TARGETS.items()), f"mem G·1 ≤ {MEMORY_TARGET:g}× step"]
    lines = []
    for r in results:
        checks = targets(r, results)
        cells = [] if checks[0]["target"].startswith("K,P") else ["—"]
        for t in checks:
            worst = "" if not t["detail"] else f" ({t['detail']})" if t["detail"] == "not converged" else \
                f"× ({t['detail']})"
            cells.append(f"{fmt(t['measured'])}{worst} {mark(t['met'])}")
        lines.append([r["name"], str(r["T"]), str(r["H"]), *cells])
    return markdown(header, lines)


def report(results: list[dict]) -> str:
    return "\n\n".join([
        "Costs in fused training steps of the matching torch model (medians; eigs: matvecs used):",
        summary_table(results),
        "from_torch time / native gdlens time at the same size (ratios of seconds):",
        native_table(results),
        f"Targets (stated for {TARGET_SETTING}; checked on every row):",
        targets_table(results),
    ])


def header_line(setting: Setting, threads: int) -> str:
    device = setting.torch_device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {threads} thread(s)"
    return (f"torch {torch.__version__}, gdlens {getattr(gd, '__version__', '?')}, device {name}, "
            f"B={setting.B}, T={setting.T}, {setting.dtype}, repeats {setting.repeats}")


def run(rows: list[Row], setting: Setting, threads: int = 1, deadline: float | None = None,
        progress: bool = True) -> list[dict]:
    """Time every row (peak memories in a child process on CPU, in-process on CUDA)."""
    results = []
    for row in rows:
        t0 = time.perf_counter()
        results.append(bench_row(row, setting, deadline, memory=setting.device != "cpu"))
        if progress:
            print(f"  {row.name:<18} H={row.H:<5} T={setting.T:<4} {time.perf_counter() - t0:6.1f} s", file=sys.stderr,
                  flush=True)
    if setting.device == "cpu":
        mems = memory_in_subprocess(rows, setting, threads)
        for r, row in zip(results, rows):
            r["memory"] = mems.get(row.key, {})
    for r in results:
        r["vs_native"] = vs_native(r, results)
        r["targets"] = targets(r, results)
    return results


# ---------------------------------------------------------------------- --big
def bench_big(kinds: list[str], device: torch.device) -> str:
    """Peak memory of setup + one G matvec + 20 probes at B=32, T=200, H=1024 (target: 8 GB)."""
    setting = Setting(B=32, T=200, repeats=1, device=device.type)
    lines = []
    for kind in kinds:
        for layers in ((0, 1) if kind in TORCH_CELLS else (0,)):
            row = Row(kind, 1024, layers)
            x, target = data(setting, row)
            model = gdlens_model(row, setting)

            def work() -> None:
                kp = build_flow(model, x, target)
                kp.G @ torch.randn(kp.shape, device=device)
                kp.G @ torch.randn(20, *kp.shape, device=device)

            t0 = time.perf_counter()
            work()  # timed once; peak_memory_mb runs it twice more
            seconds = time.perf_counter() - t0
            gb = peak_memory_mb(work, device) / 1024
            lines.append([row.name, "200", "1024", f"{seconds:.1f}", f"{gb:.2f}", mark(gb <= 8)])
            del model
            gc.collect()
    return markdown(["model", "T", "H", "seconds", "peak GB", "≤ 8 GB"], lines)


# ---------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--models", nargs="+", default=list(KINDS), choices=KINDS, type=str.lower)
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2], help="depths of the from_torch rows")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50, help="sequence length T")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--big", action="store_true", help="also the peak memory at H=1024, T=200")
    parser.add_argument("--json", metavar="PATH", help="write every measurement to PATH")
    parser.add_argument("--quick", action="store_true", help="smoke run: B=4, T=8, H=16, one repeat")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.widths, args.batch, args.steps, args.repeats = [16], 4, 8, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:  # child process: print the peak memories as JSON
        spec = json.loads(args.memory_child)
        torch.set_num_threads(spec["threads"])
        print(json.dumps(memory_of_rows([Row(**r) for r in spec["rows"]], Setting(**spec["setting"]))))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench/kp.py: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    setting = Setting(B=args.batch, T=args.steps, repeats=args.repeats, device=args.device)
    print(header_line(setting, args.threads) + "\n", flush=True)
    t0 = time.perf_counter()
    results = run(rows_for(args.models, args.widths, args.layers), setting, args.threads)
    print(report(results), flush=True)
    big = None
    if args.big:
        big = bench_big(args.models, setting.torch_device)
        print("\n--big: setup + G·1 + G·20, peak memory above the pre-call level:\n\n" + big, flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setting": asdict(setting), "threads": args.threads, "torch": torch.__version__,
                       "results": results, "big": big}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
