"""Design-space sweeps: which board, bit budget, pruning and time steps, and what each choice costs.

A sweep file (TOML) names a model, its inputs and grids; every point of the grid runs
compile -> verify -> profile and yields one flat record (accuracy on three sides, spike-level
metrics, energy and latency per inference, resources, compile time, or the reason it failed).

Why it is built this way:
* Points are keyed by content hashes (model, inputs, calibration, board spec, the point's options,
  spikeforge's version), so a re-run skips finished points and a changed input invalidates them.
* Finished points are appended to ``results.jsonl`` one line at a time (flushed), so Ctrl-C or a
  crash keeps everything finished; the columnar file (Parquet, CSV without pyarrow) and the Pareto
  set are derived from it.
* Execution goes through ``concurrent.futures`` locally or Ray (``--ray``); there is no scheduler of
  our own. Each point is seeded, so local and Ray runs give identical records.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from . import __version__
from .errors import SpikeforgeError

#: grid axes a sweep file may name under [grid], with the CompileOptions field each sets
AXES = ("bit_budget", "timesteps", "prune", "prune_method", "delay_policy")
#: the most points one sweep may expand to (a typo in a grid must not queue a million jobs)
MAX_POINTS = 20_000
#: objectives for the Pareto set: (column, sense) with +1 = larger is better
OBJECTIVES = (("accuracy", +1), ("energy_J", -1), ("latency_s", -1))


@dataclass(frozen=True)
class Point:
    """One configuration of the grid; `key` identifies it together with the content hashes."""

    board: str
    seed: int
    bit_budget: float | None = None
    timesteps: int | None = None
    prune: float | None = None
    prune_method: str = "magnitude"
    delay_policy: str = "auto"
    sets: tuple[tuple[str, Any], ...] = ()

    def label(self) -> str:
        parts = [self.board, f"seed={self.seed}"]
        for a in AXES:
            v = getattr(self, a)
            if v not in (None, "magnitude", "auto"):
                parts.append(f"{a}={v}")
        parts += [f"{k}={v}" for k, v in self.sets]
        return " ".join(parts)


@dataclass
class SweepSpec:
    """A parsed, validated sweep file."""

    model: Path
    inputs: Path
    boards: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    grid: dict[str, list[Any]] = field(default_factory=dict)
    sets: dict[str, list[Any]] = field(default_factory=dict)
    calibration: Path | None = None
    max_samples: int | None = None
    shard_size: int | None = None      # split larger verification sets across workers (exact merge)
    verify: dict[str, Any] = field(default_factory=dict)
    frontend: dict[str, Any] = field(default_factory=dict)

    def points(self) -> list[Point]:
        """The cartesian product of the grid; `--set` keys apply only to boards of that backend."""
        from .registry import backend_for

        axes = {a: list(self.grid.get(a, [None if a not in ("prune_method", "delay_policy") else
                                          ("magnitude" if a == "prune_method" else "auto")])) for a in AXES}
        n = len(self.boards) * len(self.seeds) * math.prod(len(v) for v in axes.values()) * \
            math.prod(len(v) for v in self.sets.values())
        if n > MAX_POINTS:
            raise SpikeforgeError(f"the sweep expands to {n} points; at most {MAX_POINTS} are allowed",
                                  hint="narrow a grid or split the sweep")
        out: list[Point] = []
        seen: set[Point] = set()
        for board in self.boards:
            b, backend = backend_for(board)
            own = {k: v for k, v in self.sets.items() if k.split(".", 1)[0] == backend.name}
            set_combos = [tuple(zip(own, combo)) for combo in itertools.product(*own.values())] if own else [()]
            for seed, sets, values in itertools.product(self.seeds, set_combos, itertools.product(*axes.values())):
                kw = dict(zip(AXES, values))
                if not kw["prune"]:
                    kw["prune"], kw["prune_method"] = None, "magnitude"
                if not kw["bit_budget"]:
                    kw["bit_budget"] = None
                p = Point(board=board, seed=int(seed), sets=tuple(sets), **kw)
                if p not in seen:
                    seen.add(p)
                    out.append(p)
        return out


def _finite_list(name: str, values: Any, kind: type, lo: float | None = None, hi: float | None = None,
                 file: str | None = None) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise SpikeforgeError(f"'{name}' must be a non-empty list", file=file, field=name)
    out = []
    for v in values:
        if kind in (int, float):
            if v is None or (isinstance(v, str) and v.lower() in ("none", "off")):
                out.append(None)
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SpikeforgeError(f"'{name}' value {v!r} is not a finite number", file=file, field=name)
            if kind is int and float(v) != int(v):
                raise SpikeforgeError(f"'{name}' value {v!r} is not an integer", file=file, field=name)
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise SpikeforgeError(f"'{name}' value {v!r} is outside [{lo}, {hi}]", file=file, field=name)
            out.append(kind(v))
        else:
            out.append(v)
    return out


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep TOML; paths are relative to the file. Every value is checked before any work."""
    p = Path(path)
    f = str(p)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SpikeforgeError("sweep file not found", file=f) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpikeforgeError(f"not a valid TOML file ({exc})", file=f) from None
    s = raw.get("sweep", raw)
    known = {"model", "inputs", "calibration", "boards", "seeds", "grid", "set", "max_samples", "shard_size",
             "verify", "frontend"}
    unknown = sorted(set(s) - known)
    if unknown:
        raise SpikeforgeError(f"unknown key(s) {unknown}; known: {sorted(known)}", file=f)
    for key in ("model", "inputs", "boards"):
        if key not in s:
            raise SpikeforgeError(f"missing '{key}'", file=f, field=key)
    base = p.resolve().parent
    grid_raw = s.get("grid", {})
    bad = sorted(set(grid_raw) - set(AXES))
    if bad:
        raise SpikeforgeError(f"unknown grid axis {bad}; known: {list(AXES)}", file=f, field="grid")
    grid: dict[str, list[Any]] = {}
    for axis, vals in grid_raw.items():
        if axis == "bit_budget":
            grid[axis] = _finite_list(f"grid.{axis}", vals, float, 0, 1e6, f)
        elif axis == "timesteps":
            grid[axis] = _finite_list(f"grid.{axis}", vals, int, 1, 100_000, f)
        elif axis == "prune":
            grid[axis] = _finite_list(f"grid.{axis}", vals, float, 0, 0.999, f)
        elif axis == "prune_method":
            grid[axis] = [str(v) for v in _finite_list(f"grid.{axis}", vals, str, file=f)]
            if set(grid[axis]) - {"magnitude", "structured"}:
                raise SpikeforgeError("prune_method must be magnitude or structured", file=f, field="grid")
        elif axis == "delay_policy":
            grid[axis] = [str(v) for v in _finite_list(f"grid.{axis}", vals, str, file=f)]
            if set(grid[axis]) - {"auto", "relay", "chain", "native"}:
                raise SpikeforgeError("delay_policy must be auto, relay, chain or native", file=f, field="grid")
    sets = s.get("set", {})
    if not isinstance(sets, dict) or not all(isinstance(v, list) and v for v in sets.values()):
        raise SpikeforgeError("[set] maps backend option keys to non-empty lists of values", file=f, field="set")
    boards = s["boards"]
    if not isinstance(boards, list) or not boards or not all(isinstance(b, str) for b in boards):
        raise SpikeforgeError("'boards' must be a non-empty list of board names or TOML paths", file=f)
    boards = [str((base / b).resolve()) if b.endswith(".toml") else b for b in boards]
    verify_opts = s.get("verify", {})
    if not isinstance(verify_opts, dict):
        raise SpikeforgeError("[verify] must be a table of verify options", file=f, field="verify")
    from dataclasses import fields

    from .gates import Gates

    gates = {fld.name for fld in fields(Gates)}
    bad_gates = sorted(set(verify_opts) - gates)
    if bad_gates:
        raise SpikeforgeError(f"unknown verify option(s) {bad_gates}; known: {sorted(gates)}", file=f,
                              field="verify")
    max_samples = s.get("max_samples")
    if max_samples is not None:
        max_samples = _finite_list("max_samples", [max_samples], int, 1, 10_000_000, f)[0]
    shard_size = s.get("shard_size")
    if shard_size is not None:
        shard_size = _finite_list("shard_size", [shard_size], int, 1, 10_000_000, f)[0]
    return SweepSpec(
        model=(base / s["model"]).resolve(), inputs=(base / s["inputs"]).resolve(), boards=boards,
        seeds=[int(x) for x in _finite_list("seeds", s.get("seeds", [0]), int, 0, 2**31 - 1, f)],
        grid=grid, sets={str(k): list(v) for k, v in sets.items()},
        calibration=(base / s["calibration"]).resolve() if s.get("calibration") else None,
        max_samples=max_samples, shard_size=shard_size, verify=dict(verify_opts), frontend=dict(s.get("frontend", {})))


# ------------------------------------------------------------------------------------------------ keys
def _file_hash(path: Path | None) -> str:
    if path is None:
        return ""
    from .artifact import hash_file

    if not path.exists():
        raise SpikeforgeError("file not found", file=str(path))
    return hash_file(path)


def _board_hash(board: str) -> str:
    from .boardspec import get_board

    b = get_board(board)
    return hashlib.sha256(json.dumps(b.raw, sort_keys=True, default=str).encode()).hexdigest()


def point_key(spec: SweepSpec, point: Point, hashes: dict[str, str]) -> str:
    """Content key: a changed model, input, calibration, board spec, option or version invalidates it."""
    doc = {"version": __version__, "model": hashes["model"], "inputs": hashes["inputs"],
           "calibration": hashes["calibration"], "board": hashes[f"board:{point.board}"],
           "point": asdict(point), "max_samples": spec.max_samples, "verify": spec.verify,
           "frontend": spec.frontend}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]


# ------------------------------------------------------------------------------------------------ one point
def _record(point: Point, key: str) -> dict[str, Any]:
    board = Path(point.board).stem if point.board.endswith(".toml") else point.board
    return {"key": key, "label": point.label(), "board": board, **_point_columns(point)}


@contextlib.contextmanager
def _recorded(rec: dict[str, Any]):
    """User-level failures become the record's status; a bug at one point must not lose the sweep."""
    try:
        yield
    except SpikeforgeError as exc:
        rec["status"], rec["error"] = "refused", str(exc)
    except Exception as exc:
        rec["status"], rec["error"] = "error", f"{type(exc).__name__}: {exc}"


def compile_point(spec: SweepSpec, point: Point, key: str, path: Path) -> dict[str, Any]:
    """Compile one point into the artifact directory `path`; the record so far (status set on failure)."""
    from .interfaces import CompileOptions
    from .npzio import load_npz
    from .pipeline import compile_model

    rec = _record(point, key)
    with _recorded(rec):
        calib = load_npz(spec.calibration) if spec.calibration else None
        opts = CompileOptions(timesteps=point.timesteps, bit_budget=point.bit_budget, prune=point.prune,
                              delay_policy=point.delay_policy, seed=point.seed,
                              extra={"prune_method": point.prune_method, **dict(point.sets)})
        t0 = time.perf_counter()
        compile_model(spec.model, point.board, opts, calibration=calib, **spec.frontend).save(path)
        rec["compile_s"] = time.perf_counter() - t0
    return rec


def _verify_inputs(spec: SweepSpec, art) -> tuple[dict[str, Any], Any]:
    from .inputs import load_inputs

    inputs, labels = load_inputs(spec.inputs, art.reference)
    if spec.max_samples is not None:
        inputs = {k: v[:, : spec.max_samples] for k, v in inputs.items()}
        labels = labels[: spec.max_samples] if labels is not None else None
    return inputs, labels


def emulate_shard(spec: SweepSpec, path: Path, lo: int, hi: int) -> tuple[Any, Any, Any]:
    """(float, transformed or None, board) traces of samples [lo, hi) of the verification set."""
    from .artifact import Artifact
    from .registry import get_backend
    from .verify import program_trace, reference_trace

    art = Artifact.load(path)
    inputs, _ = _verify_inputs(spec, art)
    x = {k: v[:, lo:hi] for k, v in inputs.items()}
    return reference_trace(art, x), program_trace(art, x), get_backend(art.backend).emulator().run(art, x)


def finish_point(spec: SweepSpec, rec: dict[str, Any], path: Path, sides: tuple | None = None) -> dict[str, Any]:
    """verify -> profile on a compiled point (with `sides`, from merged shard traces); fills the record."""
    from .artifact import Artifact
    from .registry import get_backend
    from .verify import verify

    with _recorded(rec):
        art = Artifact.load(path)
        inputs, labels = _verify_inputs(spec, art)
        t0 = time.perf_counter()
        res = verify(art, inputs, labels, sides=sides, **spec.verify)
        rec["verify_s"] = time.perf_counter() - t0
        rec["passed"] = bool(res.passed)
        rec["failed_checks"] = "; ".join(c.name for c in res.checks if not c.passed)
        for k, v in res.metrics.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                rec[f"m_{k}"] = float(v)
        rec["accuracy"] = rec.get("m_accuracy_board", rec.get("m_prediction_agreement", float("nan")))
        if res.board_trace is not None:
            prof = get_backend(art.backend).cost_model().profile(art, res.board_trace)
            rec["energy_J"] = prof.energy_total
            rec["latency_s"] = prof.latency_of("per_inference")
            for item in prof.resources:
                if isinstance(item.value, (int, float)):
                    rec[f"res_{item.component}"] = float(item.value)
        passes = art.meta.get("passes", {})
        alloc = (passes.get("quantize") or {}) if isinstance(passes, dict) else {}
        for k in ("timesteps", "bits_spent", "bit_budget_achieved"):
            if isinstance(alloc.get(k), (int, float)):
                rec[f"q_{k}"] = alloc[k]
        rec["status"] = "ok"
    return rec


def run_point(spec: SweepSpec, point: Point, key: str) -> dict[str, Any]:
    """compile -> verify -> profile for one point; never raises for a user-level failure (recorded)."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="spikeforge-sweep-"))
    try:
        rec = compile_point(spec, point, key, tmp / "art")
        return rec if "status" in rec else finish_point(spec, rec, tmp / "art")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _point_columns(p: Point) -> dict[str, Any]:
    d = {"seed": p.seed, "bit_budget": p.bit_budget, "timesteps": p.timesteps, "prune": p.prune,
         "prune_method": p.prune_method, "delay_policy": p.delay_policy}
    d["sets"] = json.dumps(dict(p.sets), sort_keys=True) if p.sets else ""
    return d


# ------------------------------------------------------------------------------------------------ pareto
def pareto_front(records: list[dict[str, Any]]) -> list[int]:
    """Indices of the non-dominated records over OBJECTIVES (records lacking a value are left out)."""
    pts = []
    for i, r in enumerate(records):
        vals = [r.get(c) for c, _ in OBJECTIVES]
        if r.get("status") == "ok" and all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
            pts.append((i, [s * v for (_, s), v in zip(OBJECTIVES, vals)]))
    front = []
    for i, a in pts:
        dominated = any(all(x >= y for x, y in zip(b, a)) and any(x > y for x, y in zip(b, a)) for _, b in pts)
        if not dominated:
            front.append(i)
    return front


def mark_pareto(records: list[dict[str, Any]]) -> None:
    """Set `pareto` (overall) and `pareto_board` (within its board) on every record."""
    for r in records:
        r["pareto"] = False
        r["pareto_board"] = False
    for i in pareto_front(records):
        records[i]["pareto"] = True
    for board in sorted({r["board"] for r in records}):
        idx = [i for i, r in enumerate(records) if r["board"] == board]
        for j in pareto_front([records[i] for i in idx]):
            records[idx[j]]["pareto_board"] = True


# ------------------------------------------------------------------------------------------------ store
class ResultStore:
    """Append-only JSONL of finished points; tolerant of a torn last line after a kill."""

    def __init__(self, out: Path) -> None:
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / "results.jsonl"

    def load(self) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        if not self.jsonl.exists():
            return done
        for line in self.jsonl.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by an interruption: that point simply runs again
            if isinstance(rec, dict) and "key" in rec:
                done[rec["key"]] = rec
        return done

    def append(self, rec: dict[str, Any]) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(rec, sort_keys=True, default=_json_default) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finalize(self, records: list[dict[str, Any]]) -> dict[str, str]:
        """Write results.json, the columnar file and pareto.json (atomically); return their paths."""
        from .atomic import atomic_file

        mark_pareto(records)
        paths = {}
        with atomic_file(self.dir / "results.json", suffix=".json") as tmp:
            Path(tmp).write_text(json.dumps(records, indent=1, sort_keys=True, default=_json_default) + "\n")
        paths["json"] = str(self.dir / "results.json")
        front = [r for r in records if r.get("pareto")]
        with atomic_file(self.dir / "pareto.json", suffix=".json") as tmp:
            Path(tmp).write_text(json.dumps(front, indent=1, sort_keys=True, default=_json_default) + "\n")
        paths["pareto"] = str(self.dir / "pareto.json")
        cols = sorted({k for r in records for k in r})
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({c: [_cell(r.get(c)) for r in records] for c in cols})
            with atomic_file(self.dir / "results.parquet", suffix=".parquet") as tmp:
                pq.write_table(table, tmp)
            paths["table"] = str(self.dir / "results.parquet")
        except ImportError:
            import csv

            with atomic_file(self.dir / "results.csv", suffix=".csv") as tmp, open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols)
                w.writeheader()
                for r in records:
                    w.writerow({c: r.get(c) for c in cols})
            paths["table"] = str(self.dir / "results.csv")
        return paths


def _cell(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    return str(o)


# ------------------------------------------------------------------------------------------------ execution
@dataclass
class SweepResult:
    out: Path
    records: list[dict[str, Any]]
    ran: int
    skipped: int
    interrupted: bool = False
    files: dict[str, str] = field(default_factory=dict)

    @property
    def pareto(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("pareto")]

    @property
    def failures(self) -> int:
        return sum(r.get("status") != "ok" for r in self.records)


def _worker_init() -> None:
    """Pool worker set-up: ignore SIGINT, lead a process group, import Lava tolerating its start-method call.

    Lava calls `multiprocessing.set_start_method('fork')` at import, which raises in a pool worker
    (its start method is already set, to 'fork'); setting 'fork' again changes nothing, so the call
    is made with force=True for that one import.
    """
    import functools
    import multiprocessing as mp
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setpgrp()  # own process group: terminating a worker also ends the processes Lava started in it
    from spikeforge.backends.loihi._lava_compat import install, lava_available

    if not lava_available() or mp.get_start_method(allow_none=True) != "fork":
        return
    install()
    original = mp.set_start_method
    mp.set_start_method = functools.partial(original, force=True)
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    finally:
        mp.set_start_method = original


class _Task:
    """A deferred call for _Inline (hashable by identity, like a future)."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args, self.value = fn, args, None


class _Inline:
    """One worker: tasks run in this process, one per `wait`, so each finished point is handed back (and
    stored) before the next starts; Ctrl-C loses only the point in progress."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Task:
        return _Task(fn, args)

    def wait(self, handles: set[Any]) -> set[Any]:
        h = next(iter(handles))
        h.value = h.fn(*h.args)
        return {h}

    def result(self, handle: _Task) -> Any:
        return handle.value

    def close(self, abort: bool, pending: set[Any] = frozenset()) -> None:
        pass


class _LocalPool:
    """A process pool. Not multiprocessing.Pool: its workers are daemonic and cannot start the processes
    Lava's runtime needs. Workers ignore SIGINT and lead their own process groups (see _worker_init):
    Ctrl-C reaches the parent, which keeps what finished and ends the workers and their children."""

    def __init__(self, workers: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"),
                                        initializer=_worker_init)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.submit(fn, *args)

    def wait(self, handles: set[Any]) -> set[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        return set(wait(handles, return_when=FIRST_COMPLETED)[0])

    def result(self, handle: Any) -> Any:
        return handle.result()

    def close(self, abort: bool, pending: set[Any] = frozenset()) -> None:
        if not abort:
            self.pool.shutdown(wait=True)
            return
        import signal

        procs = list(self.pool._processes.values())  # no public terminate before Python 3.14
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(timeout=10)


class _Ray:
    """Ray tasks: joins a cluster (`auto` falls back to a local instance, `local` starts one)."""

    def __init__(self, address: str, workers: int) -> None:
        try:
            import ray
        except ImportError:
            raise SpikeforgeError("--ray needs the 'ray' package (pip install 'spikeforge[sweep]')") from None
        self.ray = ray
        self.started = False
        self.remote: dict[Callable[..., Any], Any] = {}
        if ray.is_initialized():
            return
        if address == "auto":
            try:
                ray.init(address="auto", log_to_driver=False)
            except (ConnectionError, RuntimeError):
                ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        elif address == "local":
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        self.started = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        if fn not in self.remote:
            self.remote[fn] = self.ray.remote(fn)
        return self.remote[fn].remote(*args)

    def wait(self, handles: set[Any]) -> set[Any]:
        done, _ = self.ray.wait(list(handles), num_returns=1)
        return set(done)

    def result(self, handle: Any) -> Any:
        return self.ray.get(handle)

    def close(self, abort: bool, pending: set[Any] = frozenset()) -> None:
        if abort:
            for ref in pending:
                self.ray.cancel(ref, force=True)
        if self.started:
            self.ray.shutdown()


def _shards(spec: SweepSpec, point: Point, n_samples: int) -> list[tuple[int, int]] | None:
    """Batch slices for a point whose verification set is larger than spec.shard_size, when its board's
    emulator treats samples independently (then merging the traces is exact); else None."""
    if not spec.shard_size or n_samples <= spec.shard_size:
        return None
    from .registry import backend_for

    _, backend = backend_for(point.board)
    if not type(backend.emulator()).samples_independent:
        return None
    return [(lo, min(n_samples, lo + spec.shard_size)) for lo in range(0, n_samples, spec.shard_size)]


def _drive(ex: Any, jobs: list[tuple[SweepSpec, Point, str]], work: Path, n_samples: int) -> Iterable[dict[str, Any]]:
    """Run points; a point with shards runs as compile -> shard emulations (in parallel) -> merge + verify."""
    from .artifact import Artifact
    from .interfaces import Trace
    from .registry import get_backend

    pending: dict[Any, tuple[str, Any]] = {}
    for spec, point, key in jobs:
        shards = _shards(spec, point, n_samples)
        if shards is None:
            pending[ex.submit(run_point, spec, point, key)] = ("point", None)
        else:
            path = work / key
            pending[ex.submit(compile_point, spec, point, key, path)] = ("compile", (spec, path, shards))
    parts: dict[str, dict[int, Any]] = {}
    try:
        while pending:
            for h in ex.wait(set(pending)):
                kind, info = pending.pop(h)
                value = ex.result(h)
                if kind == "point":
                    yield value
                elif kind == "compile":
                    spec, path, shards = info
                    if "status" in value:  # refused at compile
                        yield value
                        continue
                    parts[value["key"]] = {}
                    for i, (lo, hi) in enumerate(shards):
                        pending[ex.submit(emulate_shard, spec, path, lo, hi)] = ("shard", (value, spec, path, i,
                                                                                           len(shards)))
                else:
                    rec, spec, path, i, n = info
                    got = parts[rec["key"]]
                    got[i] = value
                    if len(got) == n:
                        board_emu = get_backend(Artifact.load(path).backend).emulator()
                        sides = (Trace.concat([got[k][0] for k in range(n)]),
                                 None if got[0][1] is None else Trace.concat([got[k][1] for k in range(n)]),
                                 board_emu.merge([got[k][2] for k in range(n)]))
                        rec["shards"] = n
                        yield finish_point(spec, rec, path, sides)
                        import shutil

                        shutil.rmtree(path, ignore_errors=True)
                        del parts[rec["key"]]
    except BaseException:
        ex.close(abort=True, pending=set(pending))
        raise
    ex.close(abort=False)


def _sample_count(spec: SweepSpec) -> int:
    from .npzio import load_npz

    arrays = load_npz(spec.inputs)
    data = [v for k, v in arrays.items() if k not in ("labels", "analog")]
    n = int(data[0].shape[1]) if data and data[0].ndim >= 2 else 0
    return min(n, spec.max_samples) if spec.max_samples is not None else n


def run_sweep(spec: SweepSpec, out: str | os.PathLike, *, workers: int | None = None, ray: str | None = None,
              on_result: Callable[[dict[str, Any], int, int], None] | None = None) -> SweepResult:
    """Run every point not already in `out`; return all records (old and new) with the Pareto marks."""
    store = ResultStore(Path(out))
    hashes = {"model": _file_hash(spec.model), "inputs": _file_hash(spec.inputs),
              "calibration": _file_hash(spec.calibration)}
    for b in spec.boards:
        hashes[f"board:{b}"] = _board_hash(b)
    points = spec.points()
    keyed = [(p, point_key(spec, p, hashes)) for p in points]
    done = store.load()
    todo = [(spec, p, k) for p, k in keyed if k not in done]
    workers = max(1, int(workers or os.cpu_count() or 1))
    results = {k: done[k] for _, k in keyed if k in done}
    interrupted = False
    n_samples = _sample_count(spec) if spec.shard_size else 0
    if ray:
        ex: Any = _Ray(ray, workers)
    elif min(workers, len(todo)) <= 1 and not spec.shard_size:
        ex = _Inline()
    else:
        ex = _LocalPool(workers)
    n = 0
    try:
        for rec in _drive(ex, todo, store.dir / ".work", n_samples):
            store.append(rec)
            results[rec["key"]] = rec
            n += 1
            if on_result is not None:
                on_result(rec, n, len(todo))
    except KeyboardInterrupt:
        interrupted = True
    records = [results[k] for _, k in keyed if k in results]
    files = store.finalize(records)
    return SweepResult(out=Path(out), records=records, ran=n, skipped=len(keyed) - len(todo),
                       interrupted=interrupted, files=files)
