"""The `spikeforge` command line.

Exit codes: 0 ok, 1 verification failed, 2 bad input or usage (one line on stderr, no traceback),
3 internal error (one line; SPIKEFORGE_DEBUG=1 shows the traceback).
Every command that prints results accepts --json for machine-readable output on stdout.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .deadline import with_timeout
from .errors import SpikeforgeError
from .validate_opts import check_calibration, check_numbers

out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]spikeforge: error:[/] {message}", markup=True)
    sys.exit(code)


def handle_errors(fn):
    """Turn expected failures into one line and exit code 2 (1 for failed verification)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpikeforgeError as exc:
            _fail(escape(str(exc)), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except (OSError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
            # An option value or file the code did not anticipate: still the user's input, still one line.
            if os.environ.get("SPIKEFORGE_DEBUG"):
                raise
            where = kwargs.get("model") or kwargs.get("artifact")  # name the file the command was given
            _fail(escape(f"{str(where) + ': ' if where else ''}bad input or option ({type(exc).__name__}: {exc})")
                  + " (set SPIKEFORGE_DEBUG=1 for a traceback)", 2)
        except Exception as exc:  # a bug in spikeforge: say so in one line, distinct exit code
            if os.environ.get("SPIKEFORGE_DEBUG"):
                raise
            _fail(escape(f"internal error ({type(exc).__name__}: {exc})") +
                  " (please report it; SPIKEFORGE_DEBUG=1 shows the traceback)", 3)

    return wrapper


def _emit_json(obj: Any) -> None:
    from .artifact import dumps

    click.echo(dumps(obj), nl=False)


def _options(**kw: Any):
    from .interfaces import CompileOptions

    return CompileOptions(**kw)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spikeforge")
def main() -> None:
    """Compile trained spiking/ANN models to neuromorphic chips; emulate, verify and profile them."""


# ------------------------------------------------------------------------------------------------ compile
@main.command("compile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "-b", required=True, help="Board name (see `spikeforge boards`) or a board TOML file.")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Artifact directory to write.")
@click.option("--bit-budget", type=float, default=None, help="Bit budget (weight bits x spike bits x time steps).")
@click.option("--prune", type=float, default=None, help="Target sparsity in [0, 1).")
@click.option("--prune-method", type=click.Choice(["magnitude", "structured"]), default="magnitude")
@click.option("--timesteps", "-T", type=click.IntRange(min=1), default=None,
              help="Time steps per inference (ANN-to-SNN, budget).")
@click.option("--dt", type=float, default=None, help="Time step in seconds (overrides what the model records).")
@click.option("--delay-policy", type=click.Choice(["auto", "relay", "chain", "native"]), default="auto")
@click.option("--calibration", type=click.Path(path_type=Path), default=None, help=".npz of calibration inputs.")
@click.option("--trust", is_flag=True, help="Allow loading PyTorch files that can run code when loaded: full pickled modules, TorchScript (.ts/.jit) and torch.export (.pt2) archives.")
@click.option("--model-class", default=None, help="module:Class for a PyTorch state_dict.")
@click.option("--seed", type=int, default=0)
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE", help="Backend option, repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@handle_errors
@with_timeout
def compile_cmd(model, board, output, bit_budget, prune, prune_method, timesteps, dt, delay_policy, calibration,
                trust, model_class, seed, extra, as_json):
    """Compile MODEL (.nir, .onnx, .pt2/.pt/state_dict, Brian2 .py) for a board into an artifact directory.

    A Brian2 .py model is executed to build its network: only pass files you trust.
    """
    from .pipeline import compile_model

    extras: dict[str, Any] = {"prune_method": prune_method}
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpikeforgeError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            extras[key] = json.loads(value)
        except json.JSONDecodeError:
            extras[key] = value
    check_numbers({"--bit-budget": bit_budget, "--prune": prune, "--timesteps": timesteps, "--dt": dt,
                   "--seed": seed})
    calib = None
    if calibration is not None:
        calib = _load_calibration(calibration)
    opts = _options(dt=dt, timesteps=timesteps, bit_budget=bit_budget, prune=prune, delay_policy=delay_policy,
                    seed=seed, extra=extras)
    with err.status(f"compiling {model} for {board} ..."):
        artifact = compile_model(model, board, opts, calibration=calib, trust=trust or None,
                                 model_class=model_class)
        path = artifact.save(output)
    summary = {"artifact": str(path), "board": artifact.board, "backend": artifact.backend,
               "dt": artifact.meta.get("dt"), "files": sorted(artifact.files)}
    for key in ("warnings", "mapping", "summary"):
        if key in artifact.meta:
            summary[key] = artifact.meta[key]
    if as_json:
        _emit_json(summary)
        return
    out.print("[green]compiled[/] " + escape(f"{model} -> {path}  (board {artifact.board}, dt {artifact.meta.get('dt')} s)"))
    for w in artifact.meta.get("warnings", []) or []:
        err.print(f"[yellow]warning:[/] {escape(str(w))}")


def _load_calibration(path: Path) -> dict:
    from .inputs import read_npz

    arrays = read_npz(path, what="calibration file")
    check_calibration(arrays, str(path))
    return arrays


# ------------------------------------------------------------------------------------------------ emulate
def _load_artifact(path: Path):
    from .artifact import Artifact

    return Artifact.load(path)


@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "-i", "input_path", required=True, type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help=".npz to write the trace to.")
@click.option("--probes", is_flag=True, help="Also record state variables.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
@with_timeout
def emulate(artifact, input_path, output, probes, as_json):
    """Run the compiled program on an input .npz; write outputs and event counts to an .npz."""
    from .inputs import load_inputs
    from .npzio import save_npz
    from .registry import get_backend

    art = _load_artifact(artifact)
    inputs, _ = load_inputs(input_path, art.reference)
    be = get_backend(art.backend)
    with err.status("emulating ..."):
        trace = be.emulator().run(art, inputs, probes=probes)
    save_npz(output, trace.to_arrays())
    totals = {k: float(np.sum(v)) for k, v in trace.counts.items()}
    if as_json:
        _emit_json({"output": str(output), "timesteps": trace.timesteps, "batch": trace.batch, "counts": totals})
        return
    out.print(f"wrote {output}: {trace.timesteps} steps x {trace.batch} samples")
    t = Table("event", "total")
    for k, v in totals.items():
        t.add_row(k, f"{v:,.0f}")
    out.print(t)


# ------------------------------------------------------------------------------------------------ verify
@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None,
              help="Input .npz (time x batch x ...), optional `labels`. Default: the bundled inputs if the "
                   "artifact was compiled from a bundled model.")
@click.option("--tolerance", type=float, default=0.01, show_default=True,
              help="Largest accepted accuracy drop versus float (fraction: 0.01 = 1 point).")
@click.option("--min-agreement", type=float, default=0.9, show_default=True,
              help="Smallest accepted fraction of samples whose prediction equals the float model's.")
@click.option("--allow-silent", is_flag=True, help="Accept outputs that never spike.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Write a JUnit XML report.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
@with_timeout
def verify(artifact, input_path, tolerance, min_agreement, allow_silent, junit, as_json):
    """Compare the board's emulated behaviour with the float reference. Exit 1 if it disagrees."""
    from .inputs import load_inputs
    from .verify import junit_xml
    from .verify import verify as run_verify

    check_numbers({"--tolerance": tolerance, "--min-agreement": min_agreement})
    art = _load_artifact(artifact)
    if input_path is None:
        raise SpikeforgeError("no --input given", hint="spikeforge verify DIR --input X.npz")
    inputs, labels = load_inputs(input_path, art.reference)
    with err.status("verifying ..."):
        res = run_verify(art, inputs, labels, max_accuracy_drop=tolerance, min_agreement=min_agreement,
                         allow_silent=allow_silent)
    if junit is not None:
        _atomic_text(junit, junit_xml(res))
    if as_json:
        _emit_json(res.to_dict())
    else:
        t = Table("check", "result", "detail", title=f"verify {art.board}")
        for c in res.checks:
            t.add_row(c.name, "[green]pass[/]" if c.passed else "[red]FAIL[/]", escape(c.detail))
        out.print(t)
    if not res.passed:
        sys.exit(1)


def _atomic_text(path: Path, text: str) -> None:
    from .atomic import atomic_file

    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)


# ------------------------------------------------------------------------------------------------ profile
def profile_artifact(art, input_path: Path | None):
    from .inputs import load_inputs, synthetic_inputs
    from .registry import get_backend

    be = get_backend(art.backend)
    if input_path is not None:
        inputs, _ = load_inputs(input_path, art.reference)
        note = f"activity from {input_path}"
    else:
        steps = int(art.options.timesteps or art.reference.metadata.get("spikeforge.timesteps", 25))
        inputs = synthetic_inputs(art.reference, timesteps=steps)
        note = f"activity from synthetic Bernoulli(0.1) input, {steps} steps, batch 1 (pass --input for real data)"
    trace = be.emulator().run(art, inputs)
    prof = be.cost_model().profile(art, trace)
    prof.notes.insert(0, note)
    return prof, trace


def _fmt(value: float, unit: str) -> str:
    if unit in ("J", "s", "W") and value != 0:
        for scale, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f"), (1e-18, "a")):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {prefix}{unit}"
        return f"{value:.3e} {unit}"
    return f"{value:,.6g} {unit}"


@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None)
@click.option("--plot", type=click.Path(path_type=Path), default=None, help="Write an energy breakdown PNG.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
@with_timeout
def profile(artifact, input_path, plot, as_json):
    """Energy and latency of the compiled program, each figure with its source."""
    art = _load_artifact(artifact)
    with err.status("profiling ..."):
        prof, trace = profile_artifact(art, input_path)
    per_sample = {"batch": trace.batch}
    if plot is not None:
        _plot_profile(prof, plot)
    if as_json:
        d = prof.to_dict()
        d.update(per_sample)
        _emit_json(d)
        return
    t = Table("kind", "component", "value", "formula", "sources", title=f"profile {art.board}")
    for kind, items in (("energy", prof.energy), ("latency", prof.latency), ("resource", prof.resources)):
        for i in items:
            t.add_row(kind, i.component, _fmt(i.value, i.unit), escape(i.formula), escape("\n".join(i.sources)))
    t.add_row("energy", "[bold]total per inference[/]", _fmt(prof.energy_total, "J"), "sum of the above", "")
    out.print(t)
    for n in prof.notes:
        out.print(f"note: {escape(n)}")


def _plot_profile(prof, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = [i.component for i in prof.energy]
    vals = [i.value for i in prof.energy]
    ax.barh(names, vals)
    ax.set_xlabel("energy per inference (J)")
    ax.set_title(f"{prof.board}: energy by component")
    fig.tight_layout()
    from .atomic import atomic_file

    try:
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------ boards
@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def boards(ctx, as_json):
    """List the boards (or `boards show NAME`)."""
    if ctx.invoked_subcommand is not None:
        return
    from .boardspec import list_boards
    from .registry import backend_targets

    installed = backend_targets()
    rows = [{"name": b.name, "backend": b.backend, "available": b.backend in installed,
             "description": b.description} for b in list_boards()]
    if as_json:
        _emit_json(rows)
        return
    t = Table("board", "backend", "description")
    for r in rows:
        t.add_row(r["name"], r["backend"] + ("" if r["available"] else " (not installed)"), escape(r["description"]))
    out.print(t)


@boards.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def boards_show(name, as_json):
    """Print one board's constants with units and sources."""
    from dataclasses import asdict

    from .boardspec import get_board

    b = get_board(name)
    if as_json:
        _emit_json({"name": b.name, "backend": b.backend, "description": b.description, "notes": list(b.notes),
                    "constants": {s: {k: asdict(c) for k, c in cs.items()} for s, cs in b.sections.items() if cs}})
        return
    out.print(f"[bold]{b.name}[/] (backend {b.backend}): " + escape(b.description))
    t = Table("constant", "value", "unit", "status", "source")
    for section, consts in b.sections.items():
        for k, c in consts.items():
            t.add_row(f"{section}.{k}", escape(str(c.value)), c.unit, c.status,
                      escape(c.source + (f" ({c.note})" if c.note else "")))
    out.print(t)
    for n in b.notes:
        out.print(f"note: {escape(n)}")


# ------------------------------------------------------------------------------------------------ inspect / convert
@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@handle_errors
@with_timeout
def inspect(model, as_json):
    """Show a model's (or an artifact's) nodes, shapes, parameter ranges and recorded conventions."""
    from .inspect import describe_artifact, describe_graph

    if model.is_dir():
        info = describe_artifact(_load_artifact(model))
        graph_info = info["graph"]
    else:
        from .pipeline import load

        graph_info = describe_graph(load(model))
        info = {"graph": graph_info}
    if as_json:
        _emit_json(info)
        return
    t = Table("node", "type", "in", "out", "parameters", "conventions", title=str(model))
    for n in graph_info["nodes"]:
        params = "\n".join(f"{k}: {v}" for k, v in n["params"].items())
        conv = "\n".join(f"{k}={v}" for k, v in n["conventions"].items())
        t.add_row(n["name"], n["type"], str(n["input"]), str(n["output"]), escape(params), escape(conv))
    out.print(t)
    out.print(escape(f"edges: {graph_info['edges']}"))
    if graph_info["recurrent"]:
        out.print(escape(f"recurrent edges (one step latency): {graph_info['recurrent']}"))
    out.print(escape(f"graph metadata: {graph_info['metadata']}"))
    for key in ("board", "backend", "summary", "layers", "mapping", "warnings"):
        if key in info:
            out.print(f"[bold]{key}[/]: " + escape(json.dumps(info[key], indent=1, default=str)))


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path))
@click.option("--dt", type=float, default=None)
@click.option("--timesteps", "-T", type=click.IntRange(min=1), default=None)
@click.option("--calibration", type=click.Path(path_type=Path), default=None)
@click.option("--trust", is_flag=True)
@click.option("--model-class", default=None)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
@with_timeout
def convert(model, output, dt, timesteps, calibration, trust, model_class, as_json):
    """Convert a model file into an NIR file (with spikeforge's conventions in its metadata)."""
    from . import graph as G
    from .pipeline import load

    check_numbers({"--dt": dt, "--timesteps": timesteps})
    calib = None
    if calibration is not None:
        calib = _load_calibration(calibration)
    g = load(model, dt=dt, timesteps=timesteps, calibration=calib, trust=trust or None, model_class=model_class)
    if dt is not None:
        g.metadata = {**(g.metadata or {}), G.DT_KEY: float(dt)}
    G.write(g, output)
    if as_json:
        _emit_json({"output": str(output), "nodes": len(g.nodes), "edges": len(g.edges)})
    else:
        out.print(f"wrote {output} ({len(g.nodes)} nodes, {len(g.edges)} edges)")


# ------------------------------------------------------------------------------------------------ demo
@main.command()
@click.option("--boards", "board_names", default=None, help="Comma-separated boards (default: all installed).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Keep the artifacts here.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def demo(board_names, output, as_json):
    """Compile every bundled model for every board, verify and profile it; print one table."""
    from .demo import run_demo

    names = [b.strip() for b in board_names.split(",")] if board_names else None
    rows = run_demo(names, output, console=err)
    if as_json:
        _emit_json(rows)
        return
    t = Table("model", "board", "acc float", "acc board", "agree", "energy / inf", "latency / inf", "verify",
              title="spikeforge demo: bundled models on every board")
    for r in rows:
        if r.get("error"):
            reason = r["error"].split(": ", 1)[-1]
            short = reason if len(reason) <= 60 else reason[:57] + "..."
            t.add_row(r["model"], r["board"], "", "", "", "", "", f"[yellow]n/a: {escape(short)}[/]")
            continue
        t.add_row(r["model"], r["board"], f"{r['acc_float']:.2%}", f"{r['acc_board']:.2%}", f"{r['agreement']:.1%}",
                  _fmt(r["energy_J"], "J"), _fmt(r["latency_s"], "s") if r["latency_s"] is not None else "-",
                  "[green]pass[/]" if r["verified"] else "[red]FAIL[/]")
    out.print(t)
    out.print("n/a: the board cannot run this model (full reasons with --json). Energy and latency are per inference.")
    # The demo shows what each board costs; a board that loses accuracy is a finding, printed, not a crash.
    for r in rows:
        if not r.get("error") and not r["verified"]:
            out.print(f"[yellow]{r['model']} on {r['board']}:[/] " + escape("; ".join(r["checks"])))


if __name__ == "__main__":  # pragma: no cover
    main()
