"""`spikeforge sweep` and `spikeforge report`: design-space exploration and an HTML report.

Registered on the main CLI group by `cli.py`; kept apart so the core commands stay small.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .cli import _emit_json, _example, _fmt, err, handle_errors, main, out
from .errors import SpikeforgeError

_EXAMPLE_TOML = """\
[sweep]
model = "toolchain/models/digits_snn.nir"
inputs = "toolchain/models/digits_inputs.npz"
boards = ["cpu-reference", "loihi2", "spinn3"]
seeds = [0, 1]
max_samples = 64
[sweep.grid]
bit_budget = [0, 50, 100, 200]     # 0 = no quantisation pass
prune = [0.0, 0.5]
"""


def _spec_from_flags(model: Path | None, inputs: Path | None, boards: tuple[str, ...], bit_budget: tuple[float, ...],
                     prune: tuple[float, ...], timesteps: tuple[int, ...], seeds: tuple[int, ...],
                     max_samples: int | None):
    from .sweep import SweepSpec

    if model is None or inputs is None or not boards:
        raise SpikeforgeError("give a sweep TOML file, or --model, --input and at least one --board")
    grid: dict[str, list[Any]] = {}
    if bit_budget:
        grid["bit_budget"] = [b or None for b in bit_budget]
    if prune:
        grid["prune"] = list(prune)
    if timesteps:
        grid["timesteps"] = list(timesteps)
    return SweepSpec(model=model.resolve(), inputs=inputs.resolve(), boards=list(boards), seeds=list(seeds or (0,)),
                     grid=grid, max_samples=max_samples)


class _Progress:
    """A bar on a terminal; one plain line per finished point (with ETA) when piped."""

    def __init__(self, total: int) -> None:
        self.total, self.t0, self.failed = total, time.perf_counter(), 0
        self.bar = None
        if err.is_terminal and total:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("sweep"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn(), console=err,
                                transient=True)
            self.task = self.bar.add_task("sweep", total=total, failed=0)
            self.bar.start()

    def __call__(self, rec: dict[str, Any], n: int, total: int) -> None:
        self.failed += rec.get("status") != "ok"
        if self.bar is not None:
            self.bar.update(self.task, completed=n, failed=self.failed)
            return
        el = time.perf_counter() - self.t0
        eta = el / n * (total - n)
        err.print(escape(f"[{n}/{total}] {rec['label']}: {rec.get('status')} "
                         f"({self.failed} failed, elapsed {el:.0f} s, ETA {eta:.0f} s)"))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


_SWEEP_HELP = (
    "Run compile -> verify -> profile over a grid of boards and options; mark the Pareto set.\n\n"
    "Re-running into the same output directory skips finished points; Ctrl-C keeps them (exit 130).\n\n"
    "\b\nExample sweep file (paths relative to it):\n" + _EXAMPLE_TOML)


@main.command(help=_SWEEP_HELP, epilog=_example("spikeforge sweep examples/sweep_digits.toml -o out/sweep --ray auto"))
@click.argument("sweep_file", required=False, type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Results directory (results.jsonl, results.parquet/.csv, results.json, pareto.json). "
                   "Re-running into the same directory skips finished points.")
@click.option("--model", type=click.Path(path_type=Path), default=None, help="Model file (instead of a sweep TOML).")
@click.option("--input", "-i", "inputs", type=click.Path(path_type=Path), default=None,
              help="Input .npz (time, batch, ...) with optional labels.")
@click.option("--board", "-b", "boards", multiple=True, help="Board name or TOML; repeatable.")
@click.option("--bit-budget", multiple=True, type=float, help="Bit budget grid value (0 = off); repeatable.")
@click.option("--prune", multiple=True, type=click.FloatRange(0, 0.999), help="Sparsity grid value; repeatable.")
@click.option("--timesteps", "-T", multiple=True, type=click.IntRange(1, 100_000), help="Time steps; repeatable.")
@click.option("--seed", "seeds", multiple=True, type=click.IntRange(0, 2**31 - 1), help="Seed; repeatable.")
@click.option("--max-samples", type=click.IntRange(1), default=None, help="Verify on the first N samples only.")
@click.option("--shard-size", type=click.IntRange(1), default=None,
              help="Split verification sets larger than this many samples across workers (boards whose emulator "
                   "treats samples independently; traces are merged exactly), e.g. 64.")
@click.option("--workers", "-j", type=click.IntRange(1, 1024), default=None,
              help="Parallel workers (default: the machine's cores).")
@click.option("--ray", "ray_address", default=None, metavar="auto|local|ADDRESS",
              help="Run the points on Ray: 'auto' joins a running cluster or starts a local one, 'local' starts "
                   "one, else a cluster address (ray://host:10001).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@handle_errors
def sweep(sweep_file, output, model, inputs, boards, bit_budget, prune, timesteps, seeds, max_samples, shard_size,
          workers, ray_address, as_json):
    from .sweep import load_spec, run_sweep

    spec = load_spec(sweep_file) if sweep_file else _spec_from_flags(model, inputs, boards, bit_budget, prune,
                                                                    timesteps, seeds, max_samples)
    if sweep_file and max_samples is not None:
        spec.max_samples = max_samples
    if shard_size is not None:
        spec.shard_size = shard_size
    n_points = len(spec.points())
    err.print(escape(f"sweep: {n_points} points -> {output}"))
    progress = _Progress(n_points)
    try:
        res = run_sweep(spec, output, workers=workers, ray=ray_address, on_result=progress)
    finally:
        progress.close()
    if as_json:
        _emit_json({"output": str(res.out), "ran": res.ran, "skipped": res.skipped, "failures": res.failures,
                    "interrupted": res.interrupted, "files": res.files, "records": res.records})
    else:
        _print_pareto(res.records)
        out.print(escape(f"{res.ran} point(s) run, {res.skipped} already done, {res.failures} failed or refused; "
                         f"results in {res.files.get('table')}"))
    if res.interrupted:
        err.print("[yellow]interrupted:[/] finished points are kept; run the same command again to resume")
        sys.exit(130)


def _print_pareto(records: list[dict[str, Any]]) -> None:
    """Per-board Pareto sets; points that differ only by seed and score the same share one row."""
    rows: dict[tuple, list[str]] = {}
    for r in records:
        if not r.get("pareto_board"):
            continue
        parts = r["label"].split(" ")[1:]
        seed = next((p.split("=", 1)[1] for p in parts if p.startswith("seed=")), "")
        rest = " ".join(p for p in parts if not p.startswith("seed=")) or "defaults"
        key = (r["board"], rest, r["accuracy"], r["energy_J"], r.get("latency_s"), bool(r.get("pareto")))
        rows.setdefault(key, []).append(seed)
    t = Table("board", "point", "seeds", "accuracy", "energy / inf", "latency / inf", "overall",
              title="Pareto set per board (accuracy up, energy and latency down)")
    for (board, rest, acc, energy, latency, overall), seeds in sorted(rows.items(), key=lambda kv: (kv[0][0], -kv[0][2])):
        t.add_row(escape(board), escape(rest), ",".join(seeds), f"{acc:.2%}", _fmt(energy, "J"),
                  _fmt(latency, "s") if latency is not None else "-", "yes" if overall else "")
    out.print(t)


@main.command(epilog=_example("spikeforge report out/sweep -o out/sweep.html"))
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True, help="HTML file to write.")
@click.option("--input", "-i", "input_path", type=click.Path(path_type=Path), default=None,
              help="For an artifact: run verify (with hidden layers) and profile on this input .npz.")
@click.option("--samples", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Samples shown in the raster plots.")
@handle_errors
def report(target, output, input_path, samples):
    """Write one self-contained HTML report for an artifact directory or a sweep results directory.

    For an artifact, --input adds verify metrics, raster plots and the measured energy profile.
    """
    from .api import report as write_report

    path = write_report(target, output, inputs=input_path, samples=samples)
    size = path.stat().st_size
    out.print(escape(f"wrote {output} ({size / 1e6:.1f} MB, self-contained)"))



