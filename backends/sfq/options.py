"""`--set sfq.*` keys the SFQ backend reads, with types and ranges (see spikeforge.options)."""

from __future__ import annotations

import re

from spikeforge.options import Opt

#: cell libraries the JoSIM deck can include: the emitted one (code/cells.cir) or an RSFQlib checkout
CELL_LIBRARIES = ("spikeforge", "RSFQlib")
_PATH_OK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")


class CellFile(str):
    """A relative .cir path safe on a SPICE `.include` card: no spaces, quotes, newlines or `..`."""

    def __new__(cls, value: object) -> CellFile:
        s = str(value)
        if not _PATH_OK.fullmatch(s) or ".." in s or not s.endswith(".cir"):
            raise ValueError(s)
        return super().__new__(cls, s)


OPTIONS: dict[str, Opt] = {
    "sfq.coding": Opt(str, "clocked", "synapse coding: clocked integer pulses or stochastic comparators",
                      choices=("clocked", "stochastic")),
    "sfq.capacity": Opt(int, None, "storage-loop capacity in fluxons (weight pulses); default: the board's",
                        min=1, max=1 << 20),
    "sfq.max_weight": Opt(int, None, "largest integer weight |q| (pulse copies per synapse); default: the board's",
                          min=1, max=1024),
    "sfq.p_max": Opt(float, 1.0, "stochastic coding: pass probability of the largest weight, in (0, 1]",
                     min=1e-6, max=1.0),
    "sfq.leak_frac_bits": Opt(int, 8, "LIF leak: counter bits below one weight pulse (state resolution)",
                              min=1, max=24),
    "sfq.leak_bits": Opt(int, 16, "LIF leak: accumulator bits of the leak unit (decay-rate resolution)",
                         min=4, max=32),
    "sfq.mode": Opt(str, "physical", "emulator: 'physical' counts timing violations, 'error' stops at the first",
                    choices=("error", "physical")),
    "sfq.emulator": Opt(str, "auto", "emulator engine: 'pulse' (event level, every timing rule), 'array' (whole "
                        "layers per step, timing-clean clocked programs), 'auto' (pulse when a netlist was built)",
                        choices=("auto", "pulse", "array")),
    "sfq.cooling_overhead": Opt(float, None, "wall-plug W per W at 4.2 K; default: the board's", min=0.0, max=1e5),
    "sfq.cell_library": Opt(str, "spikeforge", "cells the JoSIM deck includes: 'spikeforge' (emitted "
                            "code/cells.cir) or 'RSFQlib' (an RSFQlib v3p0 checkout beside the deck)",
                            choices=CELL_LIBRARIES),
    "sfq.custom_cells": Opt(CellFile, None, "optional .cir file (relative path) replacing the emitted SF_NEURON "
                            "and SF_COMPARATOR definitions"),
    "sfq.netlist": Opt(str, "auto", "build the cell netlist and JoSIM deck: 'auto' (up to sfq.netlist_max_pulses "
                       "pulse paths), 'always', 'never' (array program and analytic counts only)",
                       choices=("auto", "always", "never")),
    "sfq.netlist_max_pulses": Opt(int, 50_000, "largest pulse-path count for which 'auto' builds the netlist",
                                  min=0, max=1 << 40),
    "sfq.junction_budget": Opt(int, None, "largest junction count one chip may hold; default: the board's",
                               min=1, max=1 << 40),
}
