"""Structural SFQ netlist: cells with named ports, point-to-point wires with delays, a cell library.

SFQ pulses cannot fan out or fan in on a wire: every output port drives exactly one input port
(fan-out needs SPLIT cells, fan-in needs MERGE cells), which `Netlist.validate` enforces.
All times are integer femtoseconds. JSON schema (``spikeforge.sfq.netlist/1``, see docs/sfq.md)::

    {"schema": "spikeforge.sfq.netlist/1", "mode": "clocked"|"stochastic", "period_fs": int,
     "steps_latency_fs": int, "library": {TYPE: {"delay_fs", "jj", "bias_uA", "setup_fs", "hold_fs",
     "min_sep_fs", "josim"}}, "cells": [{"name", "type", "params"}], "wires": [[src, sport, dst, dport,
     delay_fs]], "inputs": {node: [cell ids]}, "outputs": {node: [cell ids]}, "clock": {"root": id},
     "meta": {...}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from spikeforge.errors import SpikeforgeError

from .leak import leak_cost_bits

SCHEMA = "spikeforge.sfq.netlist/1"

#: type -> (input ports, output ports). Port order is the port index used by the emulator.
PORTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "IN": (("trig",), ("q",)),          # DC/SFQ converter; triggered by the input data
    "CLK": (("trig",), ("q",)),         # clock source (root of the clock tree)
    "JTL": (("a",), ("q",)),            # chain of `stages` JTL stages
    "PTL": (("a",), ("q",)),            # passive transmission line with driver and receiver
    "SPLIT": (("a",), ("q0", "q1")),
    "MERGE": (("a", "b"), ("q",)),
    "DFF": (("d", "clk"), ("q",)),
    "NEURON": (("exc", "inh", "clk"), ("q",)),   # clocked storage-loop neuron
    "SYN": (("a",), ("q",)),            # Josephson comparator as a Bernoulli gate
    "OUT": (("a",), ()),                # SFQ/DC converter, records pulses
}
#: Cells that only move, copy or join pulses: the "plumbing" share of the junction count.
PLUMBING = ("JTL", "PTL", "SPLIT", "MERGE")
CLOCKED = ("DFF", "NEURON")


@dataclass
class Cell:
    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Netlist:
    """Cells, wires and the library their timing comes from; ids are list indices."""

    mode: str = "clocked"
    period_fs: int = 0
    library: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    wires: list[tuple[int, str, int, str, int]] = field(default_factory=list)
    inputs: dict[str, list[int]] = field(default_factory=dict)
    outputs: dict[str, list[int]] = field(default_factory=dict)
    clock_root: int = -1
    latency_fs: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- building ----------------------------------------------------------------------------
    def add(self, name: str, ctype: str, **params: Any) -> int:
        if ctype not in PORTS:
            raise SpikeforgeError(f"unknown SFQ cell type {ctype!r}; known: {sorted(PORTS)}")
        self.cells.append(Cell(name, ctype, params))
        return len(self.cells) - 1

    def connect(self, src: int, sport: str, dst: int, dport: str, delay_fs: int = 0) -> None:
        self.wires.append((src, sport, dst, dport, int(delay_fs)))

    def delay_line(self, src: int, sport: str, pad_fs: int, name: str) -> tuple[int, str, int]:
        """Insert `pad_fs` of delay after (src, sport): a JTL chain, or a PTL for long delays.

        Returns the new driving end (cell, port) and the residual wire delay (below one JTL stage)."""
        pad_fs = int(pad_fs)
        if pad_fs <= 0:
            return src, sport, 0
        jtl = int(self.library["JTL"]["delay_fs"])
        ptl = int(self.library["PTL"]["delay_fs"])
        max_stages = int(self.meta.get("ptl_min_delay_stages", 8))
        stages = pad_fs // jtl
        if stages > max_stages and pad_fs >= ptl:
            c = self.add(name, "PTL", delay_fs=pad_fs)
            self.connect(src, sport, c, "a")
            return c, "q", 0
        if stages == 0:
            return src, sport, pad_fs
        c = self.add(name, "JTL", stages=int(stages))
        self.connect(src, sport, c, "a")
        return c, "q", pad_fs - stages * jtl

    def split_tree(self, src: int, sport: str, n: int, name: str) -> list[tuple[int, str, int]]:
        """Balanced binary SPLIT tree with n leaves: [(cell, port, depth)]; n - 1 splitters."""
        if n <= 1:
            return [(src, sport, 0)]
        s = self.add(f"{name}.s{len(self.cells)}", "SPLIT")
        self.connect(src, sport, s, "a")
        left = self.split_tree(s, "q0", (n + 1) // 2, name)
        right = self.split_tree(s, "q1", n // 2, name)
        return [(c, p, d + 1) for c, p, d in left + right]

    def merge_tree(self, dst: int, dport: str, n: int, name: str) -> list[tuple[int, str, int]]:
        """Balanced binary MERGE tree with n leaf inputs feeding (dst, dport): [(cell, port, depth)]."""
        if n <= 1:
            return [(dst, dport, 0)]
        m = self.add(f"{name}.m{len(self.cells)}", "MERGE")
        self.connect(m, "q", dst, dport)
        left = self.merge_tree(m, "a", (n + 1) // 2, name)
        right = self.merge_tree(m, "b", n // 2, name)
        return [(c, p, d + 1) for c, p, d in left + right]

    # ---- checking ----------------------------------------------------------------------------
    def validate(self) -> None:
        """Every port exists and carries at most one wire; a problem names the cell and the port."""
        used_out: dict[tuple[int, str], int] = {}
        used_in: dict[tuple[int, str], int] = {}
        n = len(self.cells)
        for i, (s, sp, d, dp, dl) in enumerate(self.wires):
            for c in (s, d):
                if not 0 <= c < n:
                    raise SpikeforgeError(f"wire {i} refers to cell {c}, netlist has {n} cells")
            cs, cd = self.cells[s], self.cells[d]
            if sp not in PORTS[cs.type][1]:
                raise SpikeforgeError(f"wire {i}: {cs.type} '{cs.name}' has no output port {sp!r}")
            if dp not in PORTS[cd.type][0]:
                raise SpikeforgeError(f"wire {i}: {cd.type} '{cd.name}' has no input port {dp!r}")
            if dl < 0:
                raise SpikeforgeError(f"wire {i} into '{cd.name}' has negative delay {dl} fs")
            if (s, sp) in used_out:
                raise SpikeforgeError(
                    f"output {cs.name}.{sp} drives two wires ({used_out[(s, sp)]} and {i}); SFQ fan-out needs a SPLIT")
            if (d, dp) in used_in:
                raise SpikeforgeError(
                    f"input {cd.name}.{dp} is driven by two wires ({used_in[(d, dp)]} and {i}); SFQ fan-in needs a MERGE")
            used_out[(s, sp)] = i
            used_in[(d, dp)] = i

    # ---- numbers -----------------------------------------------------------------------------
    def cell_jj(self, c: Cell) -> int:
        lib = self.library[c.type]
        base = int(lib["jj"])
        if c.type == "NEURON":   # exact-leak unit (leak.py): counter + accumulator bit slices
            return base + leak_cost_bits(c.params) * int(lib.get("leak_bit_jj", 0))
        return base * int(c.params.get("stages", 1)) if c.type == "JTL" else base

    def cell_bias_uA(self, c: Cell) -> float:
        lib = self.library[c.type]
        base = float(lib["bias_uA"])
        if c.type == "NEURON":
            return base + leak_cost_bits(c.params) * float(lib.get("leak_bit_bias_uA", 0.0))
        return base * int(c.params.get("stages", 1)) if c.type == "JTL" else base

    def totals(self) -> dict[str, Any]:
        """Junction count and bias current, split by cell type and by role (clock, plumbing, logic)."""
        by_type: dict[str, dict[str, float]] = {}
        jj = plumb = clock = 0
        bias = 0.0
        for c in self.cells:
            j, b = self.cell_jj(c), self.cell_bias_uA(c)
            t = by_type.setdefault(c.type, {"cells": 0, "jj": 0, "bias_uA": 0.0})
            t["cells"] += 1
            t["jj"] += j
            t["bias_uA"] += b
            jj += j
            bias += b
            if c.type in PLUMBING:
                plumb += j
            if c.params.get("net") == "clock":
                clock += j
        return {"jj": jj, "bias_uA": bias, "plumbing_jj": plumb, "clock_jj": clock,
                "plumbing_fraction": plumb / jj if jj else 0.0, "by_type": by_type}

    # ---- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "mode": self.mode, "period_fs": int(self.period_fs),
            "latency_fs": int(self.latency_fs), "library": self.library,
            "cells": [{"name": c.name, "type": c.type, "params": c.params} for c in self.cells],
            "wires": [list(w) for w in self.wires],
            "inputs": self.inputs, "outputs": self.outputs,
            "clock": {"root": self.clock_root}, "meta": self.meta,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Netlist:
        if d.get("schema") != SCHEMA:
            raise SpikeforgeError(f"not an SFQ netlist (schema {d.get('schema')!r}, expected {SCHEMA!r})")
        nl = cls(mode=d["mode"], period_fs=int(d["period_fs"]), library=d["library"],
                 cells=[Cell(c["name"], c["type"], dict(c.get("params", {}))) for c in d["cells"]],
                 wires=[(int(a), str(b), int(c), str(e), int(f)) for a, b, c, e, f in d["wires"]],
                 inputs={k: list(v) for k, v in d.get("inputs", {}).items()},
                 outputs={k: list(v) for k, v in d.get("outputs", {}).items()},
                 clock_root=int(d.get("clock", {}).get("root", -1)), latency_fs=int(d.get("latency_fs", 0)),
                 meta=d.get("meta", {}))
        for c in nl.cells:
            if c.type not in PORTS:
                raise SpikeforgeError(f"cell '{c.name}' has unknown type {c.type!r}")
        return nl

    @classmethod
    def from_json(cls, text: str) -> Netlist:
        return cls.from_dict(json.loads(text))


def fs(seconds: float) -> int:
    """Seconds -> integer femtoseconds."""
    return int(round(float(seconds) * 1e15))


def library_from_board(board: Any) -> dict[str, dict[str, Any]]:
    """The cell table (delay, JJ, bias, timing rules, JoSIM subcircuit) read from a board spec."""
    v = board.value

    def ent(delay: str | None, jj: str, bias: str, josim: str, **rules: str) -> dict[str, Any]:
        e = {"delay_fs": fs(v(delay)) if delay else 0, "jj": int(v(jj)), "bias_uA": float(v(bias)) * 1e6,
             "josim": josim}
        for k, key in rules.items():
            e[k] = fs(v(key))
        return e

    return {
        "IN": ent("timing.in_delay", "parameters.in_jj", "physics.in_bias", "LSmitll_DCSFQ_PTLTX"),
        "CLK": ent("timing.in_delay", "parameters.in_jj", "physics.in_bias", "LSmitll_DCSFQ_PTLTX"),
        "JTL": ent("timing.jtl_delay", "parameters.jtl_jj", "physics.jtl_bias", "LSmitll_JTLT"),
        "PTL": ent("timing.ptl_delay", "parameters.ptl_jj", "physics.ptl_bias", "LSmitll_PTLTX+LSmitll_PTLRX"),
        "SPLIT": ent("timing.split_delay", "parameters.split_jj", "physics.split_bias", "LSmitll_SPLITT"),
        "MERGE": ent("timing.merge_delay", "parameters.merge_jj", "physics.merge_bias", "LSmitll_MERGET",
                     min_sep_fs="timing.merge_min_separation"),
        "DFF": ent("timing.dff_clk_to_q", "parameters.dff_jj", "physics.dff_bias", "LSmitll_DFFT",
                   setup_fs="timing.dff_setup", hold_fs="timing.dff_hold"),
        "NEURON": {**ent("timing.neuron_delay", "parameters.neuron_jj", "physics.neuron_bias", "SF_NEURON",
                         setup_fs="timing.neuron_setup", hold_fs="timing.neuron_hold",
                         min_sep_fs="timing.neuron_min_separation"),
                   "leak_bit_jj": int(v("parameters.leak_bit_jj")), "leak_bit_bias_uA": float(v("physics.leak_bit_bias")) * 1e6},
        "SYN": ent("timing.synapse_delay", "parameters.synapse_jj", "physics.synapse_bias", "SF_COMPARATOR"),
        "OUT": ent("timing.out_delay", "parameters.out_jj", "physics.out_bias", "LSmitll_SFQDC"),
    }
