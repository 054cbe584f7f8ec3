"""`--set` keys the SFQ backend reads today (provisional: the SFQ engineer's file supersedes this one)."""

from __future__ import annotations

from spikeforge.options import Opt

OPTIONS: dict[str, Opt] = {
    "sfq.coding": Opt(str, "clocked", "spike coding", choices=("clocked", "stochastic")),
    "sfq.capacity": Opt(int, 8, "storage-loop capacity in flux quanta (default: the board's)", min=1,
                        max=1_000_000),
    "sfq.max_weight": Opt(int, 1, "largest integer weight (default: the board's)", min=1, max=1_000_000),
    "sfq.p_max": Opt(float, 1.0, "largest pulse probability of stochastic coding", min=0.0, max=1.0),
    "sfq.cooling_overhead": Opt(float, 400.0, "cryocooler overhead factor (default: the board's)", min=1.0),
    "sfq.cell_library": Opt(str, "RSFQlib", "cell library directory written into the JoSIM deck"),
    "sfq.custom_cells": Opt(str, "spikeforge_sfq_cells.cir", "custom cell file written into the JoSIM deck"),
    "sfq.mode": Opt(str, "physical", "emulator timing-fault mode", choices=("physical", "error")),
}
