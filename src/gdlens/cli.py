"""The ``gdlens`` command. It only parses arguments and calls library functions: everything
here can be done from Python with the same names."""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_STORE = "gdlens-runs"


def _parse_value(text: str):
    """A task argument value: a Python literal (number, tuple, list, bool, None) or a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_values(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"gdlens: error: task arguments look like KEY=VALUE, got {pair!r}")
        out[key] = _parse_value(value)
    return out


# ---------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from gdlens.demo import run_demo, run_operator_demo

    if args.operators:
        run_operator_demo(seed=args.seed)
    else:
        run_demo(store=args.store, steps=args.steps, seed=args.seed, progress=not args.no_progress)
    return 0


TRAIN_DEFAULTS = {"model": "gru", "hidden": 64, "g": 1.0, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "steps": 1000}


def _grokking(args: argparse.Namespace) -> int:
    from gdlens.experiments.grokking import run_grokking

    ignored = [flag for flag, value in (("--g", args.g), ("--optimizer", args.optimizer),
                                        ("--batch-size", args.batch_size)) if value is not None]
    ignored += ["--kp"] if args.kp else []
    ignored += ["--nonlinearity"] if args.nonlinearity != "tanh" else []
    if ignored:
        raise SystemExit(f"gdlens train grokking: {', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply (full-batch AdamW on an embedding "
                         "MLP or transformer); see 'gdlens train --help'")
    if args.model not in (None, "embedding_mlp", "transformer"):
        raise SystemExit(f"gdlens train grokking: --model must be embedding_mlp or transformer, got {args.model}")
    overrides = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("weight_decay", args.weight_decay),
                                   ("width", args.hidden), ("name", args.name)) if v is not None}
    if args.model == "transformer":
        overrides["model"] = "transformer"
    if args.betas:
        overrides["betas"] = tuple(args.betas)
    task_args = _key_values(args.task_arg)
    unknown = sorted(set(task_args) - {"p", "train_fraction", "operation"})
    if unknown:
        raise SystemExit(f"gdlens train grokking: unknown --task-arg {', '.join(unknown)}; allowed: p, train_fraction, "
                         "operation")
    result = run_grokking(seed=args.seed, store=args.store, progress=not args.no_progress, **task_args, **overrides)
    print(f"run {result.run.id} {result.run.status} in {args.store}")
    for key in sorted(k for k in result.summary if k.startswith("clocks/") or k in ("grokked", "final_train_loss")):
        print(f"  {key}: {result.summary[key]}")
    return 0


def train_config(args: argparse.Namespace) -> dict:
    """The run's config in the one schema (:func:`gdlens.config.normalize`), as a sweep spec
    with the same settings writes it: a ``gdlens train`` run and that sweep's run are one
    configuration, and the sweep skips it."""
    from gdlens.config import normalize

    given = {key: getattr(args, key) if getattr(args, key) is not None else default
             for key, default in TRAIN_DEFAULTS.items()}
    model = {"name": given["model"], "hidden": given["hidden"], "g": given["g"]}
    if given["model"] == "rnn":
        model["nonlinearity"] = args.nonlinearity
    return normalize({
        "task": {"name": args.task, **_key_values(args.task_arg)}, "model": model, "optimizer": given["optimizer"],
        "lr": given["lr"], "steps": given["steps"], "batch_size": args.batch_size,
        "weight_decay": given["weight_decay"], "betas": list(args.betas) if args.betas else None, "seed": args.seed,
        "probes": ["default", "kp"] if args.kp else "default",
    })


def _train(args: argparse.Namespace) -> int:
    import gdlens as gd

    if args.task == "grokking":
        return _grokking(args)
    for key, value in TRAIN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from gdlens.config.build import build_model, build_probes, build_task, train_kwargs

    config = train_config(args)
    task = build_task(config)
    model = build_model(config, task)
    probes = build_probes(config["probes"], recurrent=isinstance(model, gd.models.StateSpace))
    result = gd.train(model, task, probes=probes, store=args.store, name=args.name, progress=not args.no_progress,
                      **train_kwargs(config))
    print(f"run {result.run.id} {result.run.status} in {args.store}")
    for key in ("final_train_loss", "metrics/train/accuracy", "metrics/test/accuracy", "diverged_at"):
        if result.summary.get(key) is not None:
            print(f"  {key}: {result.summary[key]}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    import gdlens as gd

    frame = gd.open_store(args.store).runs(status=args.status)
    if frame.empty:
        print(f"no runs in {args.store}")
        return 0
    columns = [c for c in ("id", "name", "status", "config.task.name", "config.model.class", "config.steps",
                           "summary.final_train_loss", "summary.metrics/test/accuracy") if c in frame.columns]
    table = frame[columns].rename(columns=lambda c: c.split(".", 1)[-1])
    print(table.to_string(index=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    import gdlens as gd

    run = gd.open_store(args.store).run(args.run)
    print(f"run {run.id}  status {run.status}")
    print("config:", json.dumps(run.config, indent=2, sort_keys=True))
    summary = {k: v for k, v in run.summary.items() if not isinstance(v, float) or v == v}
    print("summary:", json.dumps(summary, indent=2, sort_keys=True))
    metrics = run.metrics()
    if not metrics.empty:
        last = metrics.groupby("name").agg(points=("step", "size"), last_step=("step", "max"), last=("value", "last"))
        print("metrics:")
        print(last.to_string())
    arrays = run.arrays()
    for name, (steps, values) in arrays.items():
        print(f"array {name}: {len(steps)} steps, shape {values[0].shape}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import gdlens as gd

    run = gd.open_store(args.store).run(args.run)
    default = {"csv": f"{run.id}.csv", "parquet": f"{run.id}.parquet", "tensorboard": f"tb-{run.id}"}[args.format]
    for path in gd.store.export_run(run, args.output or default, args.format):
        print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    import gdlens as gd

    output = args.output or f"{args.target}.html"
    print(gd.report.write_report(gd.open_store(args.store), output, name=args.target))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import gdlens as gd

    result = gd.sweep(args.spec, store=args.store, backend=args.backend, workers=args.workers, address=args.address,
                      ensemble=args.ensemble)
    print(f"sweep {result.name}: {result.ran} ran, {result.skipped} skipped, {len(result.errors)} failed "
          f"(store {args.store})")
    for index, error in list(result.errors.items())[:5]:
        print(f"  config {index} failed: {error}")
    return 0 if not result.errors else 1


def bench_dir() -> Path | None:
    """The ``bench/`` folder of a source checkout: ``./bench`` or the one beside ``src/`` of the
    installed (editable) package. Benchmarks are not part of the wheel."""
    import gdlens

    for candidate in (Path.cwd() / "bench", Path(gdlens.__file__).resolve().parents[2] / "bench"):
        if candidate.is_dir() and any(candidate.glob("*.py")):
            return candidate
    return None


def _bench(args: argparse.Namespace) -> int:
    import subprocess

    folder = bench_dir()
    if folder is None:
        raise ValueError("no bench/ folder found: benchmarks live in the source checkout; run from a clone of gdlens")
    available = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    if args.list or not args.names:
        for name in available:
            print(name)
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(available)}")
    extra = shlex.split(args.args)
    status = 0
    for name in args.names:
        print(f"== bench/{name}.py {' '.join(extra)}", flush=True)
        status = max(status, subprocess.run([sys.executable, str(folder / f"{name}.py"), *extra]).returncode)
    return status


# ---------------------------------------------------------------------- parser
def _command(sub, name: str, func: Callable, help: str, example: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    from gdlens.models import MODELS
    from gdlens.store import FORMATS, STATUSES
    from gdlens.tasks import TASKS
    from gdlens.train.loop import OPTIMIZERS

    parser = argparse.ArgumentParser(prog="gdlens", description="A lens on gradient descent.",
                                     epilog="example:\n  gdlens demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = _command(sub, "demo", _demo,
                    "train a GRU on flip-flop at a small and a large initial weight scale with the KP probe and "
                    "compare them side by side", "gdlens demo --store gdlens-runs")
    demo.add_argument("--store", default=DEFAULT_STORE, help=f"run store directory (default {DEFAULT_STORE})")
    demo.add_argument("--steps", type=int, default=400, help="training steps per run (default 400)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--operators", action="store_true",
                      help="instead: estimate trace, top eigenvalues and effective rank of an operator with a known spectrum")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")

    tr = _command(sub, "train", _train,
                  "train a model on a task and record probes into the run store; 'grokking' runs the grokking "
                  "experiment (modular addition, p = 97, embedding MLP, AdamW with weight decay 1) with its clocks",
                  "gdlens train flip_flop --model gru --hidden 64 --g 0.5 --steps 500 --kp --task-arg T=60")
    tasks = sorted(TASKS) + ["grokking"]
    tr.add_argument("task", choices=tasks, metavar="TASK", help=f"one of: {', '.join(tasks)}")
    tr.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="task generator argument (repeatable), e.g. --task-arg T=60 --task-arg bits=2")
    tr.add_argument("--model", choices=MODELS, default=None, help=f"one of: {', '.join(MODELS)} (default gru)")
    tr.add_argument("--hidden", type=int, default=None, help="hidden size / width (default 64; grokking: 512)")
    tr.add_argument("--g", type=float, default=None, help="initial recurrent weight scale (MLP: init scale)")
    tr.add_argument("--nonlinearity", choices=("tanh", "relu", "linear"), default="tanh", help="for --model rnn")
    tr.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default adam (grokking: adamw)")
    tr.add_argument("--lr", type=float, default=None, help="default 1e-3")
    tr.add_argument("--weight-decay", type=float, default=None, help="default 0 (grokking: 1.0)")
    tr.add_argument("--betas", type=float, nargs=2, metavar=("B1", "B2"))
    tr.add_argument("--steps", type=int, default=None, help="default 1000 (grokking: 4000)")
    tr.add_argument("--batch-size", type=int, default=None, help="default: full batch")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--kp", action="store_true", help="record the KP probe (effective ranks of K, P, G)")
    tr.add_argument("--store", default=DEFAULT_STORE)
    tr.add_argument("--name", default=None)
    tr.add_argument("--no-progress", action="store_true")

    runs = _command(sub, "runs", _runs, "list the runs of a store", "gdlens runs --store gdlens-runs --status completed")
    runs.add_argument("--store", default=DEFAULT_STORE)
    runs.add_argument("--status", choices=STATUSES, default=None)

    show = _command(sub, "show", _show, "show a run's config, summary and recorded metrics",
                    "gdlens show 3f2a --store gdlens-runs")
    show.add_argument("run", help="run id (or a unique prefix)")
    show.add_argument("--store", default=DEFAULT_STORE)

    export = _command(sub, "export", _export, "export a run's metrics to CSV, Parquet or TensorBoard",
                      "gdlens export 3f2a --format parquet -o metrics.parquet")
    export.add_argument("run", help="run id (or a unique prefix)")
    export.add_argument("--format", choices=FORMATS, default="csv")
    export.add_argument("-o", "--output", default=None, help="file (csv, parquet) or directory (tensorboard)")
    export.add_argument("--store", default=DEFAULT_STORE)
    rep = _command(sub, "report", _report, "write one self-contained HTML report of a run or a sweep",
                   "gdlens report demo --store gdlens-runs -o demo.html")
    rep.add_argument("target", metavar="RUN|SWEEP", help="run id (or unique prefix) or sweep name")
    rep.add_argument("-o", "--output", default=None, help="HTML file (default TARGET.html)")
    rep.add_argument("--store", default=DEFAULT_STORE)

    sw = _command(sub, "sweep", _sweep, "run a sweep from a YAML spec, skipping configurations already complete",
                  "gdlens sweep sweep.yaml --workers 2 --store gdlens-runs")
    sw.add_argument("spec", help="YAML file: base, grid, zip, configs, seeds, name")
    sw.add_argument("--store", default=DEFAULT_STORE)
    sw.add_argument("--backend", choices=("local", "serial", "dask"), default="local")
    sw.add_argument("--workers", type=int, default=2)
    sw.add_argument("--address", default=None, help="Dask scheduler address (default: a loopback LocalCluster)")
    sw.add_argument("--ensemble", action="store_true", help="train groups of small MLPs, RNNs, GRUs or LSTMs as one vectorised ensemble")

    be = _command(sub, "bench", _bench, "run benchmarks from the source checkout's bench/ (each prints ratios "
                  "measured in one run: ours against a dense or naive baseline)", "gdlens bench operators kp --args='--repeats 3'")
    be.add_argument("names", nargs="*", help="benchmarks to run (none: list them)")
    be.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    be.add_argument("--args", default="", help="arguments passed to every benchmark, e.g. --args='--repeats 3'")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from gdlens.store import StoreError

    try:
        return args.func(args)
    except (StoreError, KeyError, ValueError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"gdlens {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
