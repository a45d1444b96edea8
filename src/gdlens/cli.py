"""The ``gdlens`` command. It only parses arguments and calls library functions: everything
here can be done from Python with the same names."""

from __future__ import annotations

import argparse
import ast
import json
import os
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
    args.resume_hint = "latest"
    from gdlens.config.build import build_model, build_probes, build_task, train_kwargs

    config = train_config(args)
    task = build_task(config)
    model = build_model(config, task)
    probes = build_probes(config["probes"], recurrent=isinstance(model, gd.models.StateSpace))
    result = gd.train(model, task, probes=probes, store=args.store, name=args.name, progress=not args.no_progress,
                      **train_kwargs(config))
    print(f"run {result.run.id} {result.run.status} in {args.store}")
    _print_summary(result.summary)
    return 0


def _print_summary(summary: dict) -> None:
    for key in ("final_train_loss", "metrics/train/accuracy", "metrics/test/accuracy", "diverged_at"):
        if summary.get(key) is not None:
            print(f"  {key}: {summary[key]}")


def _read_store(path: str):
    """The store at ``path`` for a read command: never created, read-only when not writable."""
    from gdlens.store import open_store

    return open_store(path, create=False)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, allow_nan=False))


def _runs(args: argparse.Namespace) -> int:
    from gdlens.store.views import format_table, jsonable, runs_table

    records = _read_store(args.store).runs(status=args.status, sweep=args.sweep, name=args.name, as_frame=False)
    if args.json:
        _print_json(jsonable(records))
        return 0
    if not records:
        print(f"no runs in {args.store}" + (" matching the filters" if (args.status or args.sweep or args.name) else ""))
        return 0
    print(format_table(*runs_table(records)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from gdlens.store.views import format_table, run_view

    view = run_view(_read_store(args.store).run(args.run))
    if args.json:
        _print_json(view)
        return 0
    print(f"run {view['id']}  status {view['status']}" + (f"  name {view['name']}" if view["name"] else "")
          + (f"  sweep {view['sweep']}" if view["sweep"] else ""))
    if view["error"]:
        print(f"error: {view['error']}")
    print("config:", json.dumps(view["config"], indent=2, sort_keys=True))
    print("summary:", json.dumps(view["summary"], indent=2, sort_keys=True))
    if view["metrics"]:
        print("metrics:")
        rows = [[name, m["points"], m["last_step"], m["last"]] for name, m in sorted(view["metrics"].items())]
        print(format_table(["name", "points", "last_step", "last"], rows))
    for name, a in view["arrays"].items():
        print(f"array {name}: {a['steps']} steps, shape {tuple(a['shape'])}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from gdlens.store.views import compare_table, format_table, jsonable

    store = _read_store(args.store)
    ids = [store.run(r).id for r in args.runs]
    if len(set(ids)) < 2:
        raise ValueError("compare needs at least two different runs")
    by_id = {r["id"]: r for r in store.runs(as_frame=False)}
    records = [by_id[i] for i in ids]
    columns, rows = compare_table(records, everything=args.all)
    if args.json:
        _print_json(jsonable({"runs": ids, "rows": {row[0].strip("* ").strip(): dict(zip(ids, row[1:])) for row in rows},
                              "differ": [row[0][2:] for row in rows if row[0].startswith("*")]}))
        return 0
    print(format_table(columns, rows))
    return 0


def _rm(args: argparse.Namespace) -> int:
    from gdlens.store import open_store

    store = open_store(args.store, create=False, readonly=False)
    ids = [store.run(r).id for r in args.runs]  # every id resolves before anything is deleted
    for run_id in dict.fromkeys(ids):
        store.delete_run(run_id, force=args.force)
        print(f"removed run {run_id}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    import gdlens as gd

    args.resume_hint = args.run
    result = gd.resume(args.run, args.store, progress=not args.no_progress)
    print(f"run {result.run.id} {result.run.status} in {args.store}")
    _print_summary(result.summary)
    return 0


def _export(args: argparse.Namespace) -> int:
    import gdlens as gd

    run = _read_store(args.store).run(args.run)
    default = {"csv": f"{run.id}.csv", "parquet": f"{run.id}.parquet", "tensorboard": f"tb-{run.id}"}[args.format]
    for path in gd.store.export_run(run, args.output or default, args.format):
        print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    import gdlens as gd

    output = args.output or f"{args.target}.html"
    print(gd.report.write_report(_read_store(args.store), output, name=args.target, x=args.x, y=args.y))
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


def _reproduce(args: argparse.Namespace) -> int:
    from gdlens.reproduce import get, registry_table, reproduce
    from gdlens.store.views import format_table

    if args.list:
        print(format_table(*registry_table()))
        return 0
    if args.name is None:
        print("gdlens reproduce: error: name a reproduction, e.g. gdlens reproduce frequency-principle; "
              "the registry: gdlens reproduce --list", file=sys.stderr)
        return 2
    entry = get(args.name)  # an unknown name lists the registry
    out = args.output or f"reproduce-{entry.name}"
    result = reproduce(entry.name, size=args.size, seeds=args.seeds, store=args.store, out=out,
                       progress=not args.no_progress)
    print(f"{entry.title}\n{entry.citation}; size {result.size}, seeds {list(result.seeds)}, "
          f"{result.wall_seconds:.0f} s")
    print(format_table(*result.table()))
    held = sum(c["holds"] for c in result.claims)
    print(f"{held} of {len(result.claims)} claims hold; report {result.report_path}, {result.json_path}")
    return 0


# ---------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _command(sub, name: str, func: Callable, help: str, example: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the full traceback")
    return p


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("gdlens")
    except Exception:  # noqa: BLE001 - not installed (a source tree on sys.path)
        import gdlens

        return gdlens.__version__


def build_parser() -> argparse.ArgumentParser:
    from gdlens.models import MODELS
    from gdlens.store import FORMATS, STATUSES
    from gdlens.tasks import TASKS
    from gdlens.train.loop import OPTIMIZERS

    parser = _Parser(prog="gdlens", description="A lens on gradient descent.",
                     epilog="example:\n  gdlens demo", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gdlens {_version()}")
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    res = _command(sub, "resume", _resume, "continue an interrupted (or failed) run from its newest intact "
                   "checkpoint: task, model, optimizer and probes are rebuilt from its stored config",
                   "gdlens resume 3f2a --store gdlens-runs")
    res.add_argument("run", help="run id (or a unique prefix)")
    res.add_argument("--store", default=DEFAULT_STORE)
    res.add_argument("--no-progress", action="store_true")

    runs = _command(sub, "runs", _runs, "list the runs of a store: id, name, sweep, status, task, model, steps, "
                    "the swept values, final loss and test accuracy", "gdlens runs --sweep demo --status completed")
    runs.add_argument("--store", default=DEFAULT_STORE)
    runs.add_argument("--status", choices=STATUSES, default=None)
    runs.add_argument("--sweep", default=None, help="only the runs of this sweep")
    runs.add_argument("--name", default=None, help="only the runs whose name matches this pattern, e.g. 'demo-*'")
    runs.add_argument("--json", action="store_true", help="every run in full (config, summary) as JSON")

    show = _command(sub, "show", _show, "show a run's config, summary and recorded metrics",
                    "gdlens show 3f2a --store gdlens-runs")
    show.add_argument("run", help="run id (or a unique prefix)")
    show.add_argument("--store", default=DEFAULT_STORE)
    show.add_argument("--json", action="store_true", help="as JSON")

    cmp_ = _command(sub, "compare", _compare, "compare runs side by side: the config keys that differ (marked *), "
                    "the status and the final metrics", "gdlens compare 3f2a 9b1c --store gdlens-runs")
    cmp_.add_argument("runs", nargs="+", metavar="RUN", help="two or more run ids (or unique prefixes)")
    cmp_.add_argument("--store", default=DEFAULT_STORE)
    cmp_.add_argument("--all", action="store_true", help="every config key, not only those that differ")
    cmp_.add_argument("--json", action="store_true", help="as JSON")

    rm = _command(sub, "rm", _rm, "delete runs from a store: their metrics, arrays and checkpoints",
                  "gdlens rm 3f2a --store gdlens-runs")
    rm.add_argument("runs", nargs="+", metavar="RUN", help="run ids (or unique prefixes)")
    rm.add_argument("--store", default=DEFAULT_STORE)
    rm.add_argument("--force", action="store_true", help="also a run marked running whose process is alive")

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
    rep.add_argument("--x", default=None, metavar="KEY",
                     help="a sweep's x axis: a swept field (e.g. lr) or a zipped group's label; default: the first axis")
    rep.add_argument("--y", default=None, metavar="KEY",
                     help="a sweep's y axis (with --x); the other swept axes become small multiples")
    rep.add_argument("--store", default=DEFAULT_STORE)

    sw = _command(sub, "sweep", _sweep, "run a sweep from a YAML spec, skipping configurations already complete",
                  "gdlens sweep sweep.yaml --workers 2 --store gdlens-runs")
    sw.add_argument("spec", help="YAML file: base, grid, zip, configs, seeds, name")
    sw.add_argument("--store", default=DEFAULT_STORE)
    sw.add_argument("--backend", choices=("local", "serial", "dask"), default="local")
    sw.add_argument("--workers", type=int, default=2)
    sw.add_argument("--address", default=None, help="Dask scheduler address (default: a loopback LocalCluster)")
    sw.add_argument("--ensemble", action="store_true", help="train groups of small MLPs, RNNs, GRUs or LSTMs as one vectorised ensemble")

    rp = _command(sub, "reproduce", _reproduce, "rerun a published result and check its claims: the paper's figure "
                  "redrawn, published against measured values (report.html and result.json)",
                  "gdlens reproduce frequency-principle --size small --seeds 3 -o fp/report.html")
    rp.add_argument("name", nargs="?", default=None, help="the reproduction (gdlens reproduce --list)")
    rp.add_argument("--list", action="store_true", help="list the registry: name, citation, claims, small-size time")
    rp.add_argument("--size", choices=("small", "paper", "tiny"), default="small",
                    help="small (default: minutes on 2 CPU cores), paper (opt-in: a GPU or a long run), tiny (tests)")
    rp.add_argument("--seeds", type=int, default=None, metavar="N", help="number of seeds (default: the entry's)")
    rp.add_argument("--store", default=DEFAULT_STORE)
    rp.add_argument("-o", "--output", default=None, metavar="PATH",
                    help="an .html path (result.json beside it) or a directory (default reproduce-NAME/)")
    rp.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")

    be = _command(sub, "bench", _bench, "run benchmarks from the source checkout's bench/ (each prints ratios "
                  "measured in one run: ours against a dense or naive baseline)", "gdlens bench operators kp --args='--repeats 3'")
    be.add_argument("names", nargs="*", help="benchmarks to run (none: list them)")
    be.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    be.add_argument("--args", default="", help="arguments passed to every benchmark, e.g. --args='--repeats 3'")
    return parser


def _one_line(err: BaseException) -> str:
    """An exception as one line, in the user's terms."""
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    elif isinstance(err, ModuleNotFoundError) and "pip install" not in str(err):
        extra = _EXTRAS.get((err.name or "").split(".")[0])
        text = f"the Python package {err.name} is missing" + (f": pip install 'gdlens[{extra}]'" if extra else "")
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    else:
        from gdlens.store import StoreError

        known = (StoreError, ValueError, TypeError, ImportError, OSError)  # a ConfigError is a ValueError
        text = str(err) if isinstance(err, known) and str(err) else f"{type(err).__name__}: {err}"
    return " ".join(text.split())


# a missing module -> the extra that installs it
_EXTRAS = {
    "pyarrow": "analysis", "tensorboard": "tensorboard", "dask": "dask", "distributed": "dask",
    "matplotlib": "cli", "pandas": "cli", "yaml": "cli", "tqdm": "cli",
}
# what each command needs beyond the core install (torch, numpy, scipy), checked before it
# starts work: a report draws figures (matplotlib) from tables (pandas); a sweep reads YAML
# specs and draws its phase diagrams; reproduce draws the paper's figure (its --list needs
# nothing). (The demo trains and prints its summary with the core
# install, and says in one line that its HTML report needs the extra.)
_COMMAND_NEEDS = {"report": ("matplotlib", "pandas"), "sweep": ("yaml", "pandas"), "reproduce": ("matplotlib",)}


def _missing_extra(command: str) -> str | None:
    """One line naming what ``command`` needs and the extra that installs it, or None."""
    import importlib

    missing = []
    for module in _COMMAND_NEEDS.get(command, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if not missing:
        return None
    extras = sorted({_EXTRAS[m] for m in missing})
    return (f"gdlens {command} needs {', '.join(missing)}, which the core install (torch, numpy, scipy) leaves "
            f"out: pip install 'gdlens[{','.join(extras)}]'")


def _interrupted(args: argparse.Namespace) -> str:
    """The one line printed on Ctrl-C: what to run to continue."""
    hint = getattr(args, "resume_hint", None)
    if args.command == "sweep":
        return f"gdlens sweep: interrupted; continue with: gdlens sweep {shlex.quote(args.spec)} --store " \
               f"{shlex.quote(args.store)} (completed runs are skipped, interrupted ones resumed)"
    run_id = None
    if hint == "latest":
        try:
            from gdlens.store import open_store

            run_id = open_store(args.store, create=False).last_run_of_this_process()
        except Exception:  # noqa: BLE001 - nothing stored yet
            run_id = None
    elif hint:
        run_id = hint
    if run_id is None:
        return f"gdlens {args.command}: interrupted"
    return f"gdlens {args.command}: interrupted; continue with: gdlens resume {run_id} --store {shlex.quote(args.store)}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"gdlens: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """The ``gdlens`` command: every error is one line on stderr and a non-zero exit status
    (``--debug`` shows the traceback); Ctrl-C prints one line saying how to continue."""
    import warnings

    try:
        parser = build_parser()
    except ImportError as err:  # a broken install: say what is missing
        print(f"gdlens: error: {_one_line(err)}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    shown = warnings.showwarning
    if not debug:
        warnings.showwarning = _show_warning
    listing = args.command == "reproduce" and args.list if getattr(args, "command", None) else False
    needs = _missing_extra(args.command) if getattr(args, "command", None) and not listing else None
    if needs:  # before any work: a demo must not train and then fail on its report
        print(f"gdlens: error: {needs}", file=sys.stderr)
        return 2
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gdlens show RUN | head`: the reader left, nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as err:  # noqa: BLE001 - every error is one line (the traceback with --debug)
        if debug:
            raise
        print(f"gdlens {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown  # main() called from Python leaves the warnings as it found them


if __name__ == "__main__":
    sys.exit(main())
