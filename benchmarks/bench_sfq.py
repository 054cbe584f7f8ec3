"""Benchmark: SFQ pulse emulator events/s on a large generated netlist, against a naive event loop.

PyLSE (UCSB, PLDI 2022), the Python SFQ pulse simulator the issue names as the peer, is not installable
as working code from PyPI (its PyPI package is an empty placeholder; the code lives on GitHub), so this
benchmark cannot run it. As the peer measured in the same run it uses a straightforward event loop written
here: one object per cell with a `receive` method, event objects ordered in a heap, dictionary wiring,
every JTL/PTL/SPLIT pulse scheduled as its own event. Both produce the same outputs and per-cell operation
counts on the same netlist (checked below), so the ratio compares only the implementation.
The PyLSE paper reports about 56k-117k events/s; that figure is quoted, not measured here.

Times are process CPU seconds (time.process_time), so a busy shared machine slows both loops alike.

Run: python benchmarks/bench_sfq.py [--quick]
"""

from __future__ import annotations

import argparse
import heapq
import random
import time
from dataclasses import dataclass, field

import nir
import numpy as np

from spikeforge.backends.sfq import SFQBackend
from spikeforge.backends.sfq.netlist import PORTS, Netlist
from spikeforge.boards import get_board
from spikeforge.emulators.sfq import Program, SFQEmulator
from spikeforge.interfaces import CompileOptions

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller netlist (CI smoke run)")
    args = ap.parse_args()
    sizes, T, B = ([64, 48, 10], 10, 2) if args.quick else ([256, 128, 64, 10], 20, 3)
    g = generated_graph(sizes, density=0.25, seed=0)
    t0 = time.process_time()
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=T, extra={"sfq.capacity": 64}))
    t_lower = time.process_time() - t0
    nl = Netlist.from_json(art.files["code/netlist.json"])
    prog = Program(nl)
    print(f"netlist: layers {sizes}, {len(nl.cells)} cells, {len(nl.wires)} wires, {art.meta['jj']} JJ, "
          f"period {nl.period_fs / 1000:.0f} ps; lowered in {t_lower:.2f} s")
    rng = np.random.default_rng(1)
    x = (rng.random((T, B, sizes[0])) < 0.3).astype(np.float32)

    results = {}
    for label, fast in (("spikeforge (compiled fan-out)", True), ("spikeforge (every cell an event)", False)):
        em = SFQEmulator(mode="physical", seed=0, fast=fast)
        t0 = time.process_time()
        tr = em.run_program(prog, {"in": x}, mode="physical", seed=0)
        dt = time.process_time() - t0
        results[label] = (tr.meta["events"], dt, tr, em.last_cell_ops)

    naive_ops = np.zeros(len(nl.cells), dtype=np.int64)
    t0 = time.process_time()
    for b in range(B):
        sim = NaiveSim(nl, seed=0 * 1_000_003 + b)
        sim.run(triggers_for(nl, prog, x, b))
        naive_ops += np.asarray(sim.ops)
    dt_naive = time.process_time() - t0
    ev_naive = int(naive_ops.sum())

    ref_ops = results["spikeforge (compiled fan-out)"][3]
    same = bool(np.array_equal(ref_ops, naive_ops)) and \
        all(np.array_equal(v[3], ref_ops) for v in results.values())
    print(f"same per-cell operation counts in all three loops: {same}")
    print(f"{'loop':<36s} {'cell events':>12s} {'cpu s':>9s} {'events/s':>12s} {'vs naive':>9s}")
    rate_naive = ev_naive / dt_naive
    for label, (ev, dt, _, _) in results.items():
        print(f"{label:<36s} {ev:>12d} {dt:>9.2f} {ev / dt:>12.0f} {ev / dt / rate_naive:>8.1f}x")
    print(f"{'naive object-per-cell loop (peer)':<36s} {ev_naive:>12d} {dt_naive:>9.2f} {rate_naive:>12.0f} {1:>8.1f}x")
    best = results["spikeforge (compiled fan-out)"]
    print(f"PyLSE: not installable from PyPI (empty placeholder package), not run. Its paper reports about "
          f"56k-117k events/s; spikeforge here: {best[0] / best[1]:.0f} events/s "
          f"({best[0] / best[1] / 117e3:.1f}x-{best[0] / best[1] / 56e3:.1f}x that figure, different machine).")


if __name__ == "__main__":
    main()
