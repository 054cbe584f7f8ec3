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
from .display import decisions, si
from .errors import SpikeforgeError
from .progress import activity
from .validate_opts import check_calibration, check_numbers

# On a terminal rich uses its width; piped, $COLUMNS or 100, so logs stay readable and diffable.
out = Console(highlight=False, width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 100))
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _table(*headers: str, title: str | None = None, keys: int = 1) -> Table:
    """A table that fits the width: the first `keys` columns (names) never wrap or shrink to '...';
    the others wrap, folding long words instead of truncating them."""
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        if i < keys:
            t.add_column(h, no_wrap=True, overflow="fold")
        else:
            t.add_column(h, overflow="fold")
    return t


class _Sources:
    """Citations in a table: inline on a wide terminal; numbered footnotes below the table when narrow,
    so the table fits and no citation is cut."""

    def __init__(self, wide: int = 150) -> None:
        self.inline = out.width >= wide
        self.items: list[str] = []

    def cell(self, sources: list[str]) -> str:
        if self.inline:
            return "\n".join(sources)
        refs = []
        for src in sources:
            if src not in self.items:
                self.items.append(src)
            refs.append(f"[{self.items.index(src) + 1}]")
        return " ".join(refs)

    def print(self) -> None:
        for i, src in enumerate(self.items, 1):
            out.print(escape(f"[{i}] {src}"))


def _example(command: str) -> str:
    """A --help epilog showing one invocation, kept on one line (click's \\b: no rewrapping)."""
    return "\b\nExample:\n  " + command


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


def _input_shape(text: str | None) -> tuple[int, ...] | None:
    """--input-shape '1,28,28' (per sample, no batch or time axis) -> (1, 28, 28)."""
    if text is None:
        return None
    parts = [p for p in text.strip().strip("()[]").replace("x", ",").split(",") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape) or len(shape) > 8:
        raise SpikeforgeError(f"--input-shape {text!r}: expected positive sizes such as 64 or 1,28,28 (per sample, "
                              "without the batch axis)", field="input_shape")
    return shape


def _print_warnings(lines: list[str]) -> None:
    for w in lines:
        err.print(f"[yellow]warning:[/] {escape(str(w))}")


def _calibration(path: Path | None):
    """The --calibration file, checked before any work: plain finite numbers (validate_opts), then the one
    calibration format (spikeforge.calibration); each error names the file."""
    if path is None:
        return None
    from .calibration import read_calibration
    from .inputs import read_npz

    arrays = read_npz(path, what="calibration file")
    check_calibration(arrays, str(path))
    return read_calibration(arrays, file=str(path))


def _options(**kw: Any):
    from .interfaces import CompileOptions

    return CompileOptions(**kw)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spikeforge")
def main() -> None:
    """Compile trained spiking/ANN models to neuromorphic chips; emulate, verify and profile them.

    \b
    Example:
      spikeforge compile model.nir --board loihi2 -o out/art
      spikeforge verify out/art --input inputs.npz
    """
    if not sys.stdout.isatty():  # piped: $COLUMNS (read per invocation) or 100 columns
        out.width = int(os.environ.get("COLUMNS") or 100)
    import warnings

    from .api import SpikeforgeWarning

    original = warnings.showwarning
    if getattr(original, "_spikeforge", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        """spikeforge's own warnings as one line without Python's source-line form; others as Python shows them."""
        if issubclass(category, SpikeforgeWarning):
            err.print(f"[yellow]warning:[/] {escape(str(message))}")
        else:
            original(message, category, filename, lineno, file, line)

    show._spikeforge = True  # type: ignore[attr-defined]
    warnings.showwarning = show


# ------------------------------------------------------------------------------------------------ compile
@main.command("compile", epilog=_example("spikeforge compile toolchain/models/digits_snn.nir --board loihi2 "
                                 "--bit-budget 100 -o out/loihi2"))
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "-b", required=True, help="Board name (see `spikeforge boards`) or a board TOML file, e.g. loihi2 or my_board.toml.")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="Artifact directory to write (replaced atomically), e.g. out/loihi2.")
@click.option("--bit-budget", type=float, default=None, help="Bit budget in bits per synapse: weight bits x spike bits x time steps (mean over layers), "
                   "e.g. 100 = 4-bit weights x 1-bit spikes x T 25. Default: no quantisation pass.")
@click.option("--prune", type=float, default=None, help="Target weight sparsity, a fraction in [0, 1), e.g. 0.5 removes half the weights. Default: none.")
@click.option("--prune-method", type=click.Choice(["magnitude", "structured"]), default="magnitude", show_default=True,
              help="magnitude: smallest weights; structured: whole neurons (e.g. --prune-method structured).")
@click.option("--timesteps", "-T", type=click.IntRange(min=1), default=None,
              help="Time steps per inference (ANN-to-SNN conversion, bit budget), e.g. -T 25. "
                   "Default: what the model records.")
@click.option("--dt", type=float, default=None, help="Time step in seconds, e.g. 1e-3 (overrides what the model records).")
@click.option("--delay-policy", type=click.Choice(["auto", "relay", "chain", "native"]), default="auto",
              show_default=True, help="How synaptic delays beyond the board's range are mapped: auto lets the "
                                      "backend decide; relay/chain insert relay neurons; native keeps them, "
                                      "e.g. --delay-policy relay.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None, help="Calibration inputs (.npz, arrays shaped time x batch x ...) for ANN-to-SNN "
                   "normalisation and bit allocation, e.g. toolchain/models/digits_inputs.npz.")
@click.option("--trust", is_flag=True, help="Allow loading PyTorch files that can run code when loaded: full pickled modules, TorchScript (.ts/.jit) and torch.export (.pt2) archives.")
@click.option("--model-class", default=None,
              help="For a PyTorch state_dict: module:Class (importable, or a module in the current directory) or "
                   "path/to/file.py:Class, e.g. mypkg.nets:MLP.")
@click.option("--input-shape", default=None, help="Per-sample input shape of a state_dict model, e.g. 64 or 1,28,28.")
@click.option("--lenient", is_flag=True, help="Load NIR files whose declared shapes disagree with their producer "
                                               "(unambiguous repairs, one warning each).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed for passes that sample (bit allocation search, pruning), e.g. --seed 1.")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE", help="Backend option (see the board's docs), repeatable; values are JSON where they "
                   "parse, e.g. --set sfq.capacity=64.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@handle_errors
@with_timeout
def compile_cmd(model, board, output, bit_budget, prune, prune_method, timesteps, dt, delay_policy, calibration,
                trust, model_class, input_shape, lenient, seed, extra, as_json):
    """Compile MODEL (.nir, .onnx, .pt2/.pt/state_dict, Brian2 .py) for a board into an artifact directory.

    A Brian2 .py model is executed to build its network: only pass files you trust.
    """
    from . import api

    extras = api.parse_set(extra)
    check_numbers({"--bit-budget": bit_budget, "--prune": prune, "--timesteps": timesteps, "--dt": dt,
                   "--seed": seed})
    calib = _calibration(calibration)
    with activity(f"compiling {model} for {board}", err, quiet=as_json):
        artifact = api.compile(model, board, output=output, bit_budget=bit_budget, prune=prune,
                               prune_method=prune_method, timesteps=timesteps, dt=dt, delay_policy=delay_policy,
                               calibration=calib, seed=seed, trust=trust, model_class=model_class,
                               input_shape=_input_shape(input_shape), lenient=lenient, options=extras, warn=False)
    path = artifact.path
    summary = {"artifact": str(path), "board": artifact.board, "backend": artifact.backend,
               "dt": artifact.meta.get("dt"), "files": sorted(artifact.files)}
    for key in ("warnings", "semantic_warnings", "mapping", "summary"):
        if key in artifact.meta:
            summary[key] = artifact.meta[key]
    summary["decisions"] = decisions(artifact.meta)
    summary["warnings"] = artifact.warnings
    if as_json:
        _emit_json(summary)
        return
    out.print("[green]compiled[/] " + escape(f"{model} -> {path}  (board {artifact.board}, dt {artifact.meta.get('dt')} s)"))
    for line in summary["decisions"]:
        out.print("  " + escape(line))
    for w in artifact.warnings:  # each once (semantic changes included), without Python's source-line form
        err.print(f"[yellow]warning:[/] {escape(w)}")


# ------------------------------------------------------------------------------------------------ emulate
def _load_artifact(path: Path):
    from .artifact import Artifact

    return Artifact.load(path)


@main.command(epilog=_example("spikeforge emulate out/loihi2 -i toolchain/models/digits_inputs.npz -o out/trace.npz"))
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "-i", "input_path", required=True, type=click.Path(path_type=Path),
              help="Input .npz: one array per Input node shaped (time, batch, ...), e.g. inputs.npz.")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Trace .npz to write (output/<node>, count/<event>, state/<node.var>), e.g. out/trace.npz.")
@click.option("--probes", is_flag=True, help="Also record hidden layers' spikes and state (state/<node>.s, .v).")
@click.option("--batch-first", is_flag=True, help="Input arrays are (batch, time, ...), not (time, batch, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@handle_errors
@with_timeout
def emulate(artifact, input_path, output, probes, batch_first, as_json):
    """Run the compiled program on an input .npz; write outputs and event counts to an .npz."""
    from .api import emulate as emulate_api
    from .npzio import save_npz

    art = _load_artifact(artifact)
    with activity("emulating", err, quiet=as_json):
        trace = emulate_api(art, input_path, probes=probes, batch_first=batch_first)
    save_npz(output, trace.to_arrays())
    totals = {k: float(np.sum(v)) for k, v in trace.counts.items()}
    if as_json:
        _emit_json({"output": str(output), "timesteps": trace.timesteps, "batch": trace.batch, "counts": totals})
        return
    out.print(f"wrote {output}: {trace.timesteps} steps x {trace.batch} samples")
    t = _table("event", "total", keys=2)
    for k, v in totals.items():
        t.add_row(k, f"{v:,.0f}")
    out.print(t)


# ------------------------------------------------------------------------------------------------ verify
@main.command(epilog=_example("spikeforge verify out/loihi2 -i toolchain/models/digits_inputs.npz --junit out/v.xml"))
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None,
              help="Input .npz (required): arrays shaped (time, batch, ...), optional integer `labels` (batch,) "
                   "for an accuracy check, e.g. toolchain/models/digits_inputs.npz.")
@click.option("--max-accuracy-drop", "--tolerance", "max_accuracy_drop", type=float, default=None,
              help="Largest accepted accuracy drop versus float (fraction: 0.01 = 1 point; default 0.01).")
@click.option("--min-agreement", type=float, default=None,
              help="Classifiers: smallest fraction of samples without an argmax tie whose prediction equals "
                   "the float model's (default 0.9).")
@click.option("--max-count-error", type=float, default=None,
              help="Largest relative spike-count error per output (default 0.1, classifiers 0.75).")
@click.option("--min-spike-match", type=float, default=None,
              help="Smallest fraction of spikes matched within +-timing-tolerance steps (default 0.9; classifiers: not gated).")
@click.option("--timing-tolerance", type=click.IntRange(0, 1000), default=None,
              help="k: steps a spike may move and still match, after latency alignment (default 1).")
@click.option("--max-analog-error", type=float, default=None,
              help="Analog outputs: largest RMS error as a fraction of the output range (default 0.05, classifiers 0.25).")
@click.option("--allow-silent", is_flag=True, default=None, help="Accept outputs that never spike (off: a silent run fails).")
@click.option("--layers", is_flag=True, default=None, help="Name the first NIR node where board and float diverge.")
@click.option("--conditioning/--no-conditioning", default=None,
              help="When agreement fails, compare it with the float model's own agreement under a weight "
                   "perturbation the size of the board's quantisation (default on; docs/verify.md).")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="Project TOML with a [verify] table (or pyproject.toml [tool.spikeforge.verify]); flags override it.")
@click.option("--save-baseline", type=click.Path(path_type=Path), default=None,
              help="Write the board trace and metrics to this .npz (a golden baseline).")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Compare with a golden baseline .npz; fail when a trace or metric moved beyond its tolerance.")
@click.option("--junit", type=click.Path(path_type=Path), default=None,
              help="Also write a JUnit XML report, one test case per check and per output, e.g. out/verify.xml.")
@click.option("--batch-first", is_flag=True, help="Input arrays are (batch, time, ...), not (time, batch, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print every metric and check as JSON.")
@handle_errors
@with_timeout
def verify(artifact, input_path, max_accuracy_drop, min_agreement, max_count_error, min_spike_match,
           timing_tolerance, max_analog_error, allow_silent, layers, conditioning, config, save_baseline, baseline,
           junit, batch_first, as_json):
    """Compare the board's emulated behaviour with the float reference. Exit 1 if it disagrees."""
    from . import baseline as golden
    from .inputs import load_inputs
    from .project import verify_settings
    from .verify import junit_xml
    from .verify import verify as run_verify

    check_numbers({"--tolerance": max_accuracy_drop, "--min-agreement": min_agreement})
    gates, tolerances = verify_settings(config, {
        "max_accuracy_drop": max_accuracy_drop, "min_agreement": min_agreement, "max_count_error": max_count_error,
        "min_spike_match": min_spike_match, "timing_tolerance": timing_tolerance,
        "max_analog_error": max_analog_error, "allow_silent": allow_silent, "layers": layers,
        "conditioning": conditioning})
    art = _load_artifact(artifact)
    if input_path is None:
        raise SpikeforgeError("no --input given", hint="spikeforge verify DIR --input X.npz")
    notes: list[str] = []
    inputs, labels = load_inputs(input_path, art.reference, batch_first=batch_first, notes=notes)
    _print_warnings(notes)
    with activity("verifying", err, quiet=as_json):
        res = run_verify(art, inputs, labels, gates=gates)
        if baseline is not None:
            res.checks.extend(golden.compare(res, baseline, inputs, tolerances))
    if save_baseline is not None:
        golden.save(save_baseline, res, inputs)
    if junit is not None:
        _atomic_text(junit, junit_xml(res))
    if as_json:
        _emit_json(res.to_dict())
    else:
        t = _table("check", "result", "detail", title=f"verify {art.board} ({res.gates.get('kind', '?')} gates)", keys=2)
        for c in res.checks:
            t.add_row(escape(c.name), "[green]pass[/]" if c.passed else "[red]FAIL[/]", escape(c.detail))
        out.print(t)
    if not res.passed:
        sys.exit(1)


def _atomic_text(path: Path, text: str) -> None:
    from .atomic import atomic_file

    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)


# ------------------------------------------------------------------------------------------------ profile
def profile_artifact(art, input_path: Path | None, batch_first: bool = False):
    """(profile, trace) of an artifact: a thin layer over `spikeforge.api.profile`."""
    from .api import profile as profile_api

    prof = profile_api(art, input_path, batch_first=batch_first)
    return prof, prof.trace


def _fmt(value: float, unit: str) -> str:
    return si(value, unit)


@main.command(epilog=_example("spikeforge profile out/loihi2 -i toolchain/models/digits_inputs.npz --plot out/e.png"))
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None,
              help="Input .npz whose activity is costed, e.g. inputs.npz. Default: Bernoulli(0.1) spikes, "
                   "batch 1 (said in the notes).")
@click.option("--plot", type=click.Path(path_type=Path), default=None,
              help="Write an energy-per-inference breakdown PNG (J by component), e.g. out/energy.png.")
@click.option("--batch-first", is_flag=True, help="Input arrays are (batch, time, ...), not (time, batch, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON on stdout (J, s, counts).")
@handle_errors
@with_timeout
def profile(artifact, input_path, plot, batch_first, as_json):
    """Energy and latency of the compiled program, each figure with its source."""
    art = _load_artifact(artifact)
    with activity("profiling", err, quiet=as_json):
        prof, trace = profile_artifact(art, input_path, batch_first)
    per_sample = {"batch": trace.batch}
    if plot is not None:
        _plot_profile(prof, plot)
    if as_json:
        d = prof.to_dict()
        d.update(per_sample)
        _emit_json(d)
        return
    notes = _Sources()
    t = _table("kind", "component", "value", "formula", "src" if not notes.inline else "sources",
               title=f"profile {art.board}", keys=3)
    for kind, items in (("energy", prof.energy), ("latency", prof.latency), ("resource", prof.resources)):
        for i in items:
            t.add_row(kind, i.component, _fmt(i.value, i.unit), escape(i.formula), escape(notes.cell(i.sources)))
    t.add_row("energy", "[bold]total per inference[/]", _fmt(prof.energy_total, "J"), "sum of the above", "")
    out.print(t)
    notes.print()
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
@main.group(invoke_without_command=True, epilog=_example("spikeforge boards show loihi2"))
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
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
    t = _table("board", "backend", "description", keys=2)
    for r in rows:
        t.add_row(r["name"], r["backend"] + ("" if r["available"] else " (not installed)"), escape(r["description"]))
    out.print(t)


@boards.command("show", epilog=_example("spikeforge boards show spinn3 --json"))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the constants as JSON on stdout.")
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
    notes = _Sources()
    t = _table("constant", "value", "unit", "status", "source", keys=1)
    for section, consts in b.sections.items():
        for k, c in consts.items():
            t.add_row(f"{section}.{k}", escape(str(c.value)), c.unit, c.status,
                      escape(notes.cell([c.source + (f" ({c.note})" if c.note else "")])))
    out.print(t)
    notes.print()
    for n in b.notes:
        out.print(f"note: {escape(n)}")


# ------------------------------------------------------------------------------------------------ inspect / convert
@main.command(epilog=_example("spikeforge inspect toolchain/models/digits_snn.nir   (or an artifact directory)"))
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--full", is_flag=True, help="Print every array's values and every table instead of summaries.")
@click.option("--lenient", is_flag=True, help="Repair declared NIR shapes that disagree with their producer.")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON on stdout.")
@handle_errors
@with_timeout
def inspect(model, full, lenient, as_json):
    """Show a model's (or an artifact's) nodes, shapes, parameter ranges and recorded conventions.

    Arrays are summarised as dtype, shape, range and fraction of nonzeros; --full prints the values.
    """
    from .inspect import describe_artifact, describe_graph

    if model.is_dir():
        info = describe_artifact(_load_artifact(model), full=full)
        graph_info = info["graph"]
    else:
        from .graph import pop_warnings
        from .pipeline import load

        g = load(model, lenient=lenient or None)
        _print_warnings(pop_warnings(g))
        graph_info = describe_graph(g, full=full)
        info = {"graph": graph_info}
    if as_json:
        _emit_json(info)
        return
    with_conv = any(n["conventions"] for n in graph_info["nodes"])
    t = _table("node", "type", "shape in -> out", "parameters", *(["conventions"] if with_conv else []),
               title=str(model), keys=2)
    for n in graph_info["nodes"]:
        params = "\n".join(f"{k}: {v}" for k, v in n["params"].items())
        conv = "\n".join(f"{k}={v}" for k, v in n["conventions"].items())
        shown = n["name"] if n.get("original_name", n["name"]) == n["name"] else \
            f"{n['name']}\n(was {n['original_name']!r})"
        t.add_row(escape(shown), n["type"], f"{_shape(n['input'])} -> {_shape(n['output'])}", escape(params),
                  *([escape(conv)] if with_conv else []))
    out.print(t)
    out.print(escape("edges: " + ", ".join(f"{a}->{b}" for a, b in graph_info["edges"])))
    if graph_info["recurrent"]:
        out.print(escape("recurrent edges (one step latency): " +
                         ", ".join(f"{a}->{b}" for a, b in graph_info["recurrent"])))
    out.print(escape("graph metadata: " + ", ".join(f"{k}={v}" for k, v in graph_info["metadata"].items())))
    if "board" not in info:
        return
    out.print(f"[bold]board[/] {escape(info['board'])} (backend {escape(info['backend'])})")
    for line in info["decisions"]:
        out.print("  " + escape(line))
    arrays = info["arrays"]
    if full:
        for key, value in info.items():
            if key not in ("graph", "decisions", "warnings", "board", "backend"):
                out.print(f"[bold]{key}[/]: " + escape(json.dumps(value, indent=1, default=str)))
    else:
        out.print(f"[bold]arrays[/] ({len(arrays)}; --full prints values):")
        for k, v in list(arrays.items())[:8]:
            out.print(escape(f"  {k}: {v}"))
        if len(arrays) > 8:
            out.print(f"  ... {len(arrays) - 8} more")
        out.print(escape(f"files: {', '.join(info['files']) or 'none'}"))
    shown = info["warnings"] if full else info["warnings"][:3]
    for w in shown:
        out.print("[yellow]warning:[/] " + escape(w if full or len(w) <= 150 else w[:147] + "..."))
    if len(shown) < len(info["warnings"]):
        out.print(f"... {len(info['warnings']) - len(shown)} more warnings (--full lists them)")


def _shape(shape) -> str:
    return "x".join(map(str, shape)) if shape else "?"


@main.command(epilog=_example("spikeforge convert toolchain/models/digits_mlp.onnx -o out/mlp.nir -T 25 "
                     "--calibration toolchain/models/digits_inputs.npz"))
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="NIR file to write, e.g. out/m.nir.")
@click.option("--dt", type=float, default=None, help="Time step in seconds to record, e.g. 1e-3.")
@click.option("--timesteps", "-T", type=click.IntRange(min=1), default=None,
              help="Time steps per inference for ANN-to-SNN conversion, e.g. -T 25.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Calibration .npz (needed for ANN models: sets the thresholds), e.g. inputs.npz.")
@click.option("--trust", is_flag=True, help="Allow loading files that run code when loaded (pickled modules, "
                                            "TorchScript, .pt2, Brian2 .py); only for files you trust.")
@click.option("--model-class", default=None,
              help="For a PyTorch state_dict: module:Class or path/to/file.py:Class, e.g. mypkg.nets:MLP.")
@click.option("--input-shape", default=None, help="Per-sample input shape of a state_dict model, e.g. 64 or 1,28,28.")
@click.option("--lenient", is_flag=True, help="Repair declared NIR shapes that disagree with their producer.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@handle_errors
@with_timeout
def convert(model, output, dt, timesteps, calibration, trust, model_class, input_shape, lenient, as_json):
    """Convert a model file into an NIR file (with spikeforge's conventions in its metadata)."""
    from . import graph as G
    from .pipeline import load

    check_numbers({"--timesteps": timesteps, "--dt": dt})
    calib = _calibration(calibration)
    with activity(f"converting {model}", err, quiet=as_json):
        g = load(model, dt=dt, timesteps=timesteps, calibration=calib, trust=trust or None, model_class=model_class,
                 input_shape=_input_shape(input_shape), lenient=lenient or None)
    _print_warnings(G.pop_warnings(g))
    if dt is not None:
        g.metadata = {**(g.metadata or {}), G.DT_KEY: float(dt)}
    G.write(g, output)  # reads the file back before reporting success
    if as_json:
        _emit_json({"output": str(output), "nodes": len(g.nodes), "edges": len(g.edges)})
    else:
        out.print(f"wrote {output} ({len(g.nodes)} nodes, {len(g.edges)} edges)")


# ------------------------------------------------------------------------------------------------ demo
@main.command(epilog=_example("spikeforge demo --boards cpu-reference,loihi2 -o out/demo"))
@click.option("--boards", "board_names", default=None, metavar="B1,B2",
              help="Comma-separated board names (default: every installed board), e.g. loihi2,spinn3.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Directory to keep the compiled artifacts in (default: a temporary one), e.g. out/demo.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON on stdout.")
@handle_errors
def demo(board_names, output, as_json):
    """Compile every bundled model for every board, verify and profile it; print one table.

    Exit 1 when a row that should pass fails verification (rows listed as known findings of a board's
    arithmetic are shown but do not fail the run); rows a board cannot run are shown as n/a.
    """
    from .demo import run_demo, unexpected_failures

    names = [b.strip() for b in board_names.split(",")] if board_names else None
    rows = run_demo(names, output, console=err if (err.is_terminal or not as_json) else None)
    bad = unexpected_failures(rows)
    if as_json:
        _emit_json(rows)
        if bad:
            sys.exit(1)
        return
    t = _table("model", "board", "acc float", "acc board", "agree", "energy", "latency", "verify",
               title="spikeforge demo: bundled models on every board", keys=2)
    reasons: list[str] = []
    for r in rows:
        if r.get("error"):
            reasons.append(f"{r['model']} on {r['board']}: {r['error'].split(': ', 1)[-1]}")
            t.add_row(r["model"], r["board"], "", "", "", "", "", f"[yellow]n/a ({len(reasons)})[/]")
            continue
        verdict = ("[green]pass[/]" if r["verified"] else
                   "[yellow]finding[/]" if r.get("expected_failure") else "[red]FAIL[/]")
        pct = lambda v, n=2: "-" if v != v else f"{v:.{n}%}"  # noqa: E731  (nan: not measured, e.g. photonic)
        t.add_row(r["model"], r["board"], pct(r["acc_float"]), pct(r["acc_board"]), pct(r["agreement"], 1),
                  _fmt(r["energy_J"], "J"), _fmt(r["latency_s"], "s") if r["latency_s"] is not None else "-",
                  verdict)
    out.print(t)
    out.print("Energy and latency are per inference. n/a: the board cannot run this model:")
    for i, reason in enumerate(reasons, 1):
        out.print(escape(f"  ({i}) {reason}"))
    for r in rows:
        if not r.get("error") and not r["verified"]:
            why = r.get("expected_failure") or "; ".join(r["checks"])
            label = "finding" if r.get("expected_failure") else "FAIL"
            out.print(f"[yellow]{label}: {escape(r['model'])} on {escape(r['board'])}:[/] " + escape(why))
    passed = sum(1 for r in rows if not r.get("error") and r["verified"])
    out.print(f"demo: {passed} pass, {len(rows) - passed - len(reasons) - len(bad)} known findings, "
              f"{len(bad)} unexpected failures, {len(reasons)} n/a")
    if bad:
        sys.exit(1)


from . import cli_sweep  # noqa: E402,F401  (registers `sweep` and `report`)

if __name__ == "__main__":  # pragma: no cover
    main()
