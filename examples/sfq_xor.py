"""XOR on a superconducting SFQ fabric, end to end (the case study of Krylov et al. 2024).

Builds a two-layer XOR network in NIR, lowers it for the `sfq-rsfq` board in both codings, checks static
timing, emulates it pulse by pulse in `error` mode (any timing violation would stop the run) and prints
the classification, the rate margins of the stochastic version and the compile report.

    python examples/sfq_xor.py [--out DIR]
"""

from __future__ import annotations

import argparse

import nir
import numpy as np

from spikeforge.backends.sfq import SFQBackend
from spikeforge.backends.sfq.casestudy import XOR_PATTERNS
from spikeforge.backends.sfq.casestudy import xor_graph as _xor_graph
from spikeforge.backends.sfq.deckcheck import check_deck
from spikeforge.boards import get_board
from spikeforge.emulators.sfq import SFQEmulator
from spikeforge.interfaces import CompileOptions

DT = 1e-3
PATTERNS = XOR_PATTERNS


def xor_graph() -> nir.NIRGraph:
    return _xor_graph(DT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write the clocked artifact (netlist, JoSIM deck, report) here")
    args = ap.parse_args()
    board = get_board("sfq-rsfq")
    for coding, T, extra in (("clocked", 10, {}), ("stochastic", 400, {"sfq.p_max": 0.9})):
        x = np.zeros((T, 4, 2), np.float32)
        for b, (a, c) in enumerate(PATTERNS):
            x[:, b] = (a, c)
        art = SFQBackend().lower(xor_graph(), board, CompileOptions(timesteps=T, seed=1,
                                                                    extra={"sfq.coding": coding, **extra}))
        tr = SFQEmulator(mode="error").run(art, {"in": x})
        rates = tr.outputs["out"].mean(0)
        print(f"\n== {coding}: {art.meta['jj']} JJ, period {art.meta['period_fs'] / 1000:.0f} ps, static timing "
              f"violations {art.meta['sta']['violations']}, emulated violations {tr.meta['violation_count']}, "
              f"{tr.meta['events']} pulses")
        for b, (a, c) in enumerate(PATTERNS):
            pred = int(rates[b, 0] > rates[b, 1])
            print(f"  {a} xor {c} = {a ^ c}: rate(XOR) {rates[b, 0]:.3f}  rate(not XOR) {rates[b, 1]:.3f}  -> {pred} "
                  f"{'ok' if pred == a ^ c else 'WRONG'}")
        problems = check_deck(art.files["code/top.cir"], art.files["code/cells.cir"])
        print(f"  JoSIM deck parser-level check (deckcheck.py): {'clean' if not problems else problems[:3]}")
        if coding == "clocked":
            print(art.files["code/report.txt"])
            if args.out:
                print("artifact written to", art.save(args.out))


if __name__ == "__main__":
    main()
