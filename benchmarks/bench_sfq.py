"""Benchmark: SFQ pulse emulator events/s on a large generated netlist, against a naive event loop.

PyLSE (UCSB, PLDI 2022), the Python SFQ pulse simulator the issue names as the peer, is not installable
as working code from PyPI (its PyPI package is an empty placeholder; the code lives on GitHub), so this
benchmark cannot run it. As the peer measured in the same run it uses a straightforward event loop written
here: one object per cell with a `receive` method, event objects ordered in a heap, dictionary wiring,
every JTL/PTL/SPLIT pulse scheduled as its own event. Both produce the same outputs and per-cell operation
counts on the same netlist (checked below), so the ratio compares only the implementation.
The PyLSE paper reports about 56k-117k events/s; that figure is quoted, not measured here.

Scale (issue 15): an n-n-10 IF MLP (ternary weights, density 0.5; n = 1414 is about 1 M synapses) is compiled
for sfq-rsfq in a fresh process (wall seconds, peak RSS, bytes per synapse at three sizes), then the array
emulator runs it against a float32 GEMM floor of the same network; both outputs must be equal.
Timings are wall-clock medians of repeats after a warm-up (benchmarks/_common.py).

Run: python benchmarks/bench_sfq.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np

from spikeforge.backends.sfq import SFQBackend
from spikeforge.backends.sfq.netlist import PORTS, Netlist
from spikeforge.boards import get_board
from spikeforge.emulators.sfq import Program, SFQEmulator
from spikeforge.interfaces import CompileOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, timeit  # noqa: E402

DT = 1e-3


def generated_graph(sizes: list[int], density: float, seed: int) -> nir.NIRGraph:
    """A random layered IF network with ternary weights: sizes[0] inputs, then IF layers."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, nir.NIRNode] = {"in": nir.Input(np.array([sizes[0]]))}
    edges, prev = [], "in"
    for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
        W = rng.choice([-1.0, 0.0, 1.0], size=(b, a), p=[density / 3, 1 - density, 2 * density / 3])
        nodes[f"fc{k}"] = nir.Linear(W)
        nodes[f"n{k}"] = nir.IF(r=np.ones(b), v_threshold=np.full(b, 1.5))
        edges += [(prev, f"fc{k}"), (f"fc{k}", f"n{k}")]
        prev = f"n{k}"
    nodes["out"] = nir.Output(np.array([sizes[-1]]))
    edges.append((prev, "out"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": DT})


# ---------------------------------------------------------------------------------------------------
# The naive peer: same semantics (physical mode), textbook object-oriented discrete-event loop
# ---------------------------------------------------------------------------------------------------


@dataclass(order=True)
class Event:
    time: int
    cell: int
    port: int
    seq: int = field(compare=False, default=0)


class NaiveSim:
    def __init__(self, nl: Netlist, seed: int):
        self.nl = nl
        self.rng = random.Random(seed)
        self.queue: list[Event] = []
        self.ops = [0] * len(nl.cells)
        self.out: list[tuple[int, int]] = []
        self.wires: dict[tuple[int, str], tuple[int, str, int]] = {}
        for s, sp, d, dp, dl in nl.wires:
            self.wires[(s, sp)] = (d, dp, dl)
        self.state: dict[int, dict] = {i: {"last": -(1 << 60), "clk": -(1 << 60), "n": 0, "pend": False}
                                       for i in range(len(nl.cells))}

    def delay(self, i: int) -> int:
        c = self.nl.cells[i]
        lib = self.nl.library[c.type]
        if c.type == "JTL":
            return lib["delay_fs"] * int(c.params.get("stages", 1))
        if c.type == "PTL":
            return int(c.params["delay_fs"])
        return lib["delay_fs"]

    def emit(self, i: int, t: int) -> None:
        c = self.nl.cells[i]
        for port in PORTS[c.type][1]:
            w = self.wires.get((i, port))
            if w is not None:
                d, dp, dl = w
                heapq.heappush(self.queue, Event(t + self.delay(i) + dl, d, PORTS[self.nl.cells[d].type][0].index(dp)))

    def receive(self, ev: Event) -> None:
        i, t, port = ev.cell, ev.time, ev.port
        c = self.nl.cells[i]
        lib = self.nl.library[c.type]
        st = self.state[i]
        self.ops[i] += 1
        if c.type in ("IN", "CLK", "JTL", "PTL", "SPLIT"):
            self.emit(i, t)
        elif c.type == "MERGE":
            if t - st["last"] < lib["min_sep_fs"]:
                return
            st["last"] = t
            self.emit(i, t)
        elif c.type == "SYN":
            if self.rng.random() < float(c.params.get("p", 1.0)):
                self.emit(i, t)
        elif c.type == "DFF":
            if port == 0:
                if t - st["clk"] < lib["hold_fs"] or st["n"]:
                    return
                st["n"], st["last"] = 1, t
            else:
                st["clk"] = t
                if st["n"] and t - st["last"] >= lib["setup_fs"]:
                    st["n"] = 0
                    self.emit(i, t)
        elif c.type == "NEURON":
            p = c.params
            if port == 2:
                v, late = st["n"], 0
                if t - st["last"] < lib["setup_fs"]:
                    late = st["delta"]
                    v -= late
                sub = int(p.get("reset_sub", p.get("threshold", 1)))
                if p.get("reset_timing") == "delayed" and st["pend"]:
                    v = v - sub if p.get("reset") == "subtract" else int(p.get("v_reset", 0))
                fired = v >= int(p.get("threshold", 1))
                if fired:
                    self.emit(i, t)
                    if p.get("reset_timing") != "delayed":
                        v = v - sub if p.get("reset") == "subtract" else int(p.get("v_reset", 0))
                st["pend"] = fired
                lf = float(p.get("leak_frac", 0.0)) if p.get("leak") == "decay" else 0.0
                if lf and v:
                    v -= int(v * lf + 0.5) if v > 0 else -int(-v * lf + 0.5)
                st["n"], st["clk"] = v + late, t
            else:
                if t - st["last"] < lib["min_sep_fs"] or t - st["clk"] < lib["hold_fs"]:
                    return
                delta = 1 if port == 0 else -1
                v = st["n"] + delta
                cap = int(p.get("capacity", 1 << 30))
                if v > cap or v < -cap:
                    delta, v = 0, st["n"]
                st["n"], st["last"], st["delta"] = v, t, delta
        elif c.type == "OUT":
            self.out.append((t, i))

    def run(self, triggers: list[tuple[int, int]]) -> None:
        for t, c in triggers:
            heapq.heappush(self.queue, Event(t, c, 0))
        while self.queue:
            self.receive(heapq.heappop(self.queue))


def triggers_for(nl: Netlist, prog: Program, x: np.ndarray, b: int) -> list[tuple[int, int]]:
    P = nl.period_fs
    trig = [(k * P + prog.offset[nl.clock_root], nl.clock_root) for k in range(x.shape[0])]
    ids = next(iter(nl.inputs.values()))
    for t, i in zip(*np.nonzero(x[:, b, :])):
        trig.append((int(t) * P + prog.offset[ids[i]], ids[i]))
    return trig


# ---------------------------------------------------------------------------------------------------
# Scale: compile time and peak memory per synapse, array emulator against the float GEMM floor
# ---------------------------------------------------------------------------------------------------

_CHILD = """
import resource, sys, time
import numpy as np
sys.argv = ['x']
sys.path.insert(0, 'benchmarks')
from bench_sfq import mlp_graph
from spikeforge.backends.sfq import SFQBackend
from spikeforge.boards import get_board
from spikeforge.interfaces import CompileOptions
n, compile_it = int({n}), {compile_it}
g = mlp_graph(n)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if compile_it:
    art = SFQBackend().lower(g, get_board('sfq-rsfq'), CompileOptions(timesteps=20, extra={{'sfq.capacity': 4096, 'sfq.netlist': 'never'}}))
    syn = art.meta['estimate']['synapses']
else:
    syn = 0
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, base, syn)
"""


def mlp_graph(n: int, seed: int = 0) -> nir.NIRGraph:
    """n-n-10 IF MLP, balanced ternary weights at density 0.5 (n^2 / 2 + 5 n synapses; n = 1414: about 1 M),
    thresholds near two standard deviations of the drive so that layers fire sparsely, not every step."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, nir.NIRNode] = {"in": nir.Input(np.array([n]))}
    edges, prev = [], "in"
    for k, (a, b, th) in enumerate(((n, n, 2.0 * np.sqrt(0.1 * n)), (n, 10, 2.0 * np.sqrt(0.05 * n)))):
        W = rng.choice([-1.0, 0.0, 1.0], size=(b, a), p=[0.25, 0.5, 0.25])
        nodes[f"fc{k}"] = nir.Linear(W)
        nodes[f"n{k}"] = nir.IF(r=np.ones(b), v_threshold=np.full(b, float(np.floor(th)) + 0.5))
        edges += [(prev, f"fc{k}"), (f"fc{k}", f"n{k}")]
        prev = f"n{k}"
    nodes["out"] = nir.Output(np.array([10]))
    edges.append((prev, "out"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": DT})


def child_compile(n: int, compile_it: bool = True) -> tuple[float, float, float, int]:
    """Compile in a fresh process: (seconds, peak RSS MB, RSS MB before compiling, synapses)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _CHILD.format(n=n, compile_it=compile_it)], cwd=root, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024, float(out[2]) / 1024, int(out[3])


def gemm_floor(g: nir.NIRGraph, x: np.ndarray) -> np.ndarray:
    """The same IF network in float32 numpy: one GEMM per layer and step, threshold, zero reset."""
    Ws = [np.asarray(g.nodes[k].weight, np.float32).T.copy() for k in ("fc0", "fc1")]
    ths = [np.asarray(g.nodes[k].v_threshold, np.float32) for k in ("n0", "n1")]
    T, B = x.shape[:2]
    v = [np.zeros((B, W.shape[1]), np.float32) for W in Ws]
    out = np.zeros((T, B, Ws[-1].shape[1]), np.float32)
    hidden = 0.0
    for t in range(T):
        s = x[t]
        for k, W in enumerate(Ws):
            v[k] += s @ W
            s = (v[k] > ths[k]).astype(np.float32)
            v[k][s > 0] = 0.0
            if k == 0:
                hidden += float(s.sum())
        out[t] = s
    return out, hidden


def scale(rep: Report, quick: bool) -> None:
    sizes = [354, 500, 707] if quick else [707, 1000, 1414]
    _, _, rss0, _ = child_compile(sizes[0], compile_it=False)
    per_syn = []
    for n in sizes:
        secs, peak, before, syn = child_compile(n)
        per_syn.append((peak - before) * 1e6 / syn)
        rep.rows.append({"what": "compile sfq-rsfq", "synapses": syn, "seconds": secs, "peak_rss_MB": peak,
                         "rss_before_compile_MB": before, "bytes_per_synapse": per_syn[-1]})
        print(f"compile {syn:>9,d} synapses: {secs:.2f} s, peak RSS {peak:.0f} MB (process before compile "
              f"{before:.0f} MB, imports only {rss0:.0f} MB), {per_syn[-1]:.0f} B/synapse", flush=True)
    if not quick:
        rep.target("compile 1 M synapses (s)", rep.rows[-1]["seconds"], 10.0, higher_is_better=False, unit=" s")
        rep.target("compile 1 M synapses peak RSS (MB)", rep.rows[-1]["peak_rss_MB"], 1024.0, higher_is_better=False,
                   unit=" MB")
    rep.target("memory per synapse, largest / smallest design (linear = 1)", per_syn[-1] / per_syn[0], 1.5,
               higher_is_better=False)
    n = sizes[-1]
    g = mlp_graph(n)
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=20, extra={"sfq.capacity": 4096,
                                                                                             "sfq.netlist": "never"}))
    T, B = (10, 8) if quick else (20, 16)
    x = (np.random.default_rng(1).random((T, B, n)) < 0.2).astype(np.float32)
    em = SFQEmulator(engine="array")
    t_arr, tr = timeit(lambda: em.run(art, {"in": x}), repeats=3, warmup=1)
    t_floor, (ref, hidden) = timeit(lambda: gemm_floor(g, x), repeats=5, warmup=1)
    same = bool(np.array_equal(tr.outputs["out"], ref)) and tr.meta["possible_overflow"] == 0 \
        and tr.layer_counts["n0"]["spikes"] == hidden
    print(f"array emulator: {t_arr.fmt()}; float GEMM floor: {t_floor.fmt()}; outputs and hidden spike counts "
          f"equal: {same} ({int(ref.sum())} of {ref.size} output and {int(hidden)} of {T * B * n} hidden "
          "neuron-steps spiking)", flush=True)
    rep.rows.append({"what": "emulate", "synapses": art.meta["estimate"]["synapses"], "T": T, "B": B,
                     "array_s": t_arr.to_dict(), "gemm_floor_s": t_floor.to_dict(), "outputs_equal": same})
    rep.target("array emulator / float GEMM floor (median)", t_arr.median / t_floor.median, 50.0,
               higher_is_better=False, unit="x")
    rep.target("array emulator outputs equal the float GEMM floor", float(same), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller designs (smoke run)")
    ap.add_argument("--out", default=None, help="results directory (see benchmarks/_common.py)")
    ap.add_argument("--part", choices=("all", "scale", "pulse"), default="all")
    args = ap.parse_args()
    rep = Report("bench_sfq")
    if args.part in ("all", "scale"):
        scale(rep, args.quick)
    if args.part == "scale":
        rep.save()
        return
    sizes, T, B = ([64, 48, 10], 10, 2) if args.quick else ([256, 128, 64, 10], 20, 3)
    g = generated_graph(sizes, density=0.25, seed=0)
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=T, extra={"sfq.capacity": 64}))
    nl = Netlist.from_json(art.files["code/netlist.json"])
    prog = Program(nl)
    print(f"pulse-level netlist: layers {sizes}, {len(nl.cells)} cells, {len(nl.wires)} wires, {art.meta['jj']} JJ, "
          f"period {nl.period_fs / 1000:.0f} ps", flush=True)
    x = (np.random.default_rng(1).random((T, B, sizes[0])) < 0.3).astype(np.float32)

    results = {}
    for label, fast in (("spikeforge (compiled fan-out)", True), ("spikeforge (every cell an event)", False)):
        em = SFQEmulator(mode="physical", seed=0, fast=fast)

        def run(em: SFQEmulator = em) -> tuple[Any, np.ndarray]:
            tr = em.run_program(prog, {"in": x}, mode="physical", seed=0)
            return tr, em.last_cell_ops
        t, (tr, ops) = timeit(run, repeats=3, warmup=1)
        results[label] = (tr.meta["events"], t, ops)

    def naive() -> np.ndarray:
        ops = np.zeros(len(nl.cells), dtype=np.int64)
        for b in range(B):
            sim = NaiveSim(nl, seed=b)
            sim.run(triggers_for(nl, prog, x, b))
            ops += np.asarray(sim.ops)
        return ops
    t_naive, naive_ops = timeit(naive, repeats=3, warmup=1)
    ref_ops = results["spikeforge (compiled fan-out)"][2]
    same = bool(np.array_equal(ref_ops, naive_ops)) and all(np.array_equal(v[2], ref_ops) for v in results.values())
    print(f"same per-cell operation counts in all three loops: {same}")
    ev_naive = int(naive_ops.sum())
    rate_naive = ev_naive / t_naive.median
    for label, (ev, t, _) in results.items():
        print(f"{label:<36s} {ev:>10d} events, {t.fmt()}, {ev / t.median:,.0f} events/s, "
              f"{ev / t.median / rate_naive:.1f}x naive")
        rep.rows.append({"what": label, "events": ev, "seconds": t.to_dict(), "events_per_s": ev / t.median})
    print(f"{'naive object-per-cell loop (peer)':<36s} {ev_naive:>10d} events, {t_naive.fmt()}, {rate_naive:,.0f} events/s")
    rep.rows.append({"what": "naive loop", "events": ev_naive, "seconds": t_naive.to_dict()})
    rep.target("pulse emulator results equal the naive loop (per-cell operations)", float(same), 1.0)
    rep.notes.append("PyLSE is not installable from PyPI (empty placeholder package) and is not run; its paper "
                     "reports about 56k-117k events/s.")
    rep.save()


if __name__ == "__main__":
    main()
