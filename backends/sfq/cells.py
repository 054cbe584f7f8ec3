"""The JoSIM cell library the deck includes (code/cells.cir): our own subcircuits of the cells used.

Why: the old deck included `RSFQlib/<cell>.cir` files that were never emitted, so it could not run.
These are this project's own textbook-topology definitions (Likharev & Semenov, IEEE TAS 1(1), 1991;
Polonsky et al., IEEE TAS 3(1), 1993), named after the ColdFlux RSFQlib v3p0 cells they stand for so
that `--set sfq.cell_library=RSFQlib` can swap in the characterised originals. Parameters:

* Junction model `jjmit`: MIT-LL SFQ5ee, critical-current density 100 uA/um^2 (Ic = 100 uA per unit
  area), Vg = 2.8 mV, C = 0.07 pF per unit area, Rsub = 160 ohm, Rn = 16 ohm (the process figures RSFQlib
  v3p0 states for SFQ5ee).
* Each junction is shunted to beta_c = 1: R = sqrt(Phi0 / (2 pi Ic C)) = 6.86 ohm / area.
* Storage and coupling inductances 2-5 pH (L Ic ~ Phi0/2..1 Phi0, the usual RSFQ range); bias currents
  are the board's per-cell totals (`physics.*_bias`, RSFQlib datasheet figures), split over the bias points.

Each `.subckt` carries a `*$ dir` comment naming each pin's direction (in/out), which the
parser-level deck check (deckcheck.py) uses to see that every net is driven once and read.
The neuron (SF_NEURON) and comparator (SF_COMPARATOR) are not RSFQlib cells; their topology is a
storage loop with escape junctions and a clocked read-out, and a two-junction comparator (Krylov et
al. 2024); their figures are assumptions, as on the board.
"""

from __future__ import annotations

from typing import Any

#: josim subcircuit name -> (pins, pin directions)
_CELLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "LSmitll_DCSFQ_PTLTX": (("trig", "q"), ("in", "out")),
    "LSmitll_JTLT": (("a", "q"), ("in", "out")),
    "LSmitll_PTLTX": (("a", "q"), ("in", "out")),
    "LSmitll_PTLRX": (("a", "q"), ("in", "out")),
    "LSmitll_SPLITT": (("a", "q0", "q1"), ("in", "out", "out")),
    "LSmitll_MERGET": (("a", "b", "q"), ("in", "in", "out")),
    "LSmitll_DFFT": (("d", "clk", "q"), ("in", "in", "out")),
    "LSmitll_SFQDC": (("a", "q"), ("in", "out")),
    "SF_NEURON": (("exc", "inh", "clk", "q"), ("in", "in", "in", "out")),
    "SF_COMPARATOR": (("a", "q", "ctrl"), ("in", "out", "in")),
}

_BODY: dict[str, list[str]] = {
    # input current step -> SFQ pulse: a JJ pair that switches on the rising edge, then a JTL stage
    "LSmitll_DCSFQ_PTLTX": ["L1 trig n1 3.9p", "J1 n1 0 1.0", "L2 n1 n2 1.1p", "J2 n2 n3 1.25", "L3 n3 n4 2.0p",
                            "J3 n4 0 1.5", "B n4", "L4 n4 q 2.0p", "J4 q 0 1.5", "B q"],
    "LSmitll_JTLT": ["L1 a n1 2.0p", "J1 n1 0 2.5", "B n1", "L2 n1 n2 2.0p", "J2 n2 0 2.5", "B n2", "L3 n2 q 2.0p"],
    "LSmitll_PTLTX": ["L1 a n1 2.0p", "J1 n1 0 2.5", "B n1", "R1 n1 q 1.4"],
    "LSmitll_PTLRX": ["R1 a n1 1.4", "J1 n1 0 1.5", "B n1", "L1 n1 n2 2.0p", "J2 n2 0 2.5", "B n2", "L2 n2 q 2.0p"],
    "LSmitll_SPLITT": ["L1 a n1 2.0p", "J1 n1 0 3.0", "B n1", "L2 n1 n2 2.0p", "J2 n2 0 2.5", "B n2",
                       "L3 n1 n3 2.0p", "J3 n3 0 2.5", "B n3", "L4 n2 q0 2.0p", "L5 n3 q1 2.0p"],
    # two inputs, each through a series escape junction into a common node
    "LSmitll_MERGET": ["L1 a n1 2.0p", "J1 n1 0 2.5", "B n1", "J2 n1 n3 1.5", "L2 b n2 2.0p", "J3 n2 0 2.5", "B n2",
                       "J4 n2 n3 1.5", "J5 n3 0 2.5", "B n3", "L3 n3 q 2.0p"],
    # one-fluxon storage loop n2-n3, read out destructively by the clock
    "LSmitll_DFFT": ["L1 d n1 2.0p", "J1 n1 0 2.5", "B n1", "J2 n1 n2 1.2", "L2 n2 n3 5.0p", "J3 n3 0 2.0",
                     "L3 clk n4 2.0p", "J4 n4 0 2.5", "B n4", "J5 n4 n2 1.2", "L4 n3 q 2.0p", "B n3"],
    # SFQ -> level: a T-flip-flop-like toggling loop drives a load resistor
    "LSmitll_SFQDC": ["L1 a n1 2.0p", "J1 n1 0 2.5", "B n1", "J2 n1 n2 1.5", "L2 n2 n3 7.0p", "J3 n3 0 2.0",
                      "B n3", "R1 n3 q 2.0", "RL q 0 50"],
    # multi-fluxon storage loop: exc adds, inh removes (through escape junctions), clk reads it out
    "SF_NEURON": ["L1 exc n1 2.0p", "J1 n1 0 2.5", "B n1", "J2 n1 n2 1.2", "L2 inh n3 2.0p", "J3 n3 0 2.5",
                  "B n3", "J4 n2 n3 1.2", "L3 n2 n4 20.0p", "J5 n4 0 1.5", "L4 clk n5 2.0p", "J6 n5 0 2.5",
                  "B n5", "J7 n5 n4 1.2", "L5 n4 q 2.0p", "B n4"],
    # Josephson comparator pair (Bernoulli gate): the control current sets P(pass)
    "SF_COMPARATOR": ["L1 a n1 2.0p", "J1 n1 n2 1.0", "J2 n2 0 1.0", "L2 ctrl n2 10.0p", "L3 n2 q 2.0p"],
}

JJ_MODEL = ".model jjmit jj(rtype=1, vg=2.8mV, cap=0.07pF, r0=160, rn=16, icrit=0.1mA)"


def pins_of(sub: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Pin names and directions of an emitted subcircuit."""
    return _CELLS[sub]


def cell_library(used: list[str], bias_uA: dict[str, float]) -> str:
    """`.subckt` definitions of the used cells; bias_uA: subcircuit -> total bias current (uA)."""
    out = ["* spikeforge SFQ cell library (own definitions; see backends/sfq/cells.py for topologies and sources)",
           JJ_MODEL]
    for sub in used:
        pins, dirs = _CELLS[sub]
        body = _BODY[sub]
        nb = sum(1 for ln in body if ln.startswith("B "))
        ib = bias_uA.get(sub, 0.0) / max(1, nb)
        out += ["", f".subckt {sub} {' '.join(pins)}", f"*$ dir {' '.join(dirs)}"]
        k = 0
        for ln in body:
            parts = ln.split()
            if parts[0] == "B":
                k += 1
                out.append(f"IB{k} 0 {parts[1]} pwl(0 0 5p {ib:.1f}u)")
            elif parts[0].startswith("J"):
                name, a, b, area = parts
                out.append(f"B{name[1:]} {a} {b} jjmit area={area}")
                out.append(f"RB{name[1:]} {a} {b} {6.86 / float(area):.3f}")
            else:
                out.append(ln)
        out.append(f".ends {sub}")
    return "\n".join(out) + "\n"


def used_subcircuits(library: dict[str, dict[str, Any]], types: set[str]) -> list[str]:
    """Subcircuit names the given cell types instantiate (PTL = transmitter + receiver)."""
    names: set[str] = set()
    for t in types:
        names.update(library[t]["josim"].split("+"))
    return sorted(names)
