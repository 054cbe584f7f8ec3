"""The emitted JoSIM deck: its cell library is emitted, the clock reaches the cells, sources are
monotone, every net is driven once and read, and user strings never become cards."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from spikeforge.backends.sfq import SFQBackend
from spikeforge.backends.sfq.casestudy import xor_graph
from spikeforge.backends.sfq.deckcheck import check_deck, parse_subckts
from spikeforge.boards import get_board
from spikeforge.errors import SpikeforgeError
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model

SHARED = Path(__file__).resolve().parents[2] / "shared"
needs_models = pytest.mark.skipif(not (SHARED / "models" / "lif_norse.nir").is_file(), reason="shared models missing")


def _deck(art) -> tuple[str, str]:
    return art.files["code/top.cir"], art.files["code/cells.cir"]


@pytest.mark.parametrize("coding", ["clocked", "stochastic"])
def test_xor_case_study_deck_passes_parser_check(coding: str) -> None:
    art = SFQBackend().lower(xor_graph(1e-3), get_board("sfq-rsfq"),
                             CompileOptions(timesteps=4, extra={"sfq.coding": coding}))
    top, lib = _deck(art)
    assert check_deck(top, lib) == []
    used = {ln.split()[-1] for ln in top.splitlines() if ln.startswith("X")}
    assert used <= set(parse_subckts(lib))            # every instantiated cell is defined in the emitted file
    # the clock source drives the clock root's trigger pin (the old deck drove a dangling 'nc_clk')
    iclk = next(ln for ln in top.splitlines() if ln.startswith("Iclk"))
    trig = iclk.split()[2]
    assert any(ln.startswith("X") and ln.split()[1] == trig for ln in top.splitlines())


@needs_models
def test_lif_norse_deck_passes_parser_check() -> None:
    art = compile_model(SHARED / "models" / "lif_norse.nir", "sfq-rsfq", CompileOptions(dt=1e-4, timesteps=20))
    assert check_deck(*_deck(art)) == []


def test_checker_catches_the_old_deck_bugs() -> None:
    art = SFQBackend().lower(xor_graph(1e-3), get_board("sfq-rsfq"), CompileOptions(timesteps=2))
    top, lib = _deck(art)
    iin = next(ln for ln in top.splitlines() if ln.startswith("Iin"))
    backwards = top.replace(iin, iin.split(" pwl(")[0] + " pwl(0 0 0.001p 0 0.000p 600u)")
    assert any("does not rise" in p for p in check_deck(backwards, lib))
    dangling = top.replace(iin, iin.replace(iin.split()[2], "nc_clk"))
    probs = check_deck(dangling, lib)
    assert any("read by nothing" in p for p in probs) and any("driven by nothing" in p for p in probs)
    assert any("undefined subcircuit" in p for p in check_deck(top, lib.replace(".subckt LSmitll_MERGET", ".subckt X")))
    x = next(ln for ln in top.splitlines() if ln.startswith("X") and ln.endswith("LSmitll_SPLITT"))
    doubled = top.replace(x, x + "\n" + x.replace(x.split()[0], "Xdup", 1))
    assert any("driven 2 times" in p for p in check_deck(doubled, lib))


def test_hostile_names_and_options_never_become_cards() -> None:
    evil = "in\n.control\nshell touch /tmp/pwned\n.endc"
    nodes = {evil: nir.Input(np.array([1])), "fc": nir.Linear(np.ones((1, 1))),
             "n\nshell rm -rf ~": nir.IF(r=np.ones(1), v_threshold=np.full(1, 0.5)), "out": nir.Output(np.array([1]))}
    g = nir.NIRGraph(nodes=nodes, edges=[(evil, "fc"), ("fc", "n\nshell rm -rf ~"), ("n\nshell rm -rf ~", "out")],
                     metadata={"spikeforge.dt": 1e-3})
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=2))
    top, lib = _deck(art)
    heads = {ln.split()[0].lower() for ln in top.splitlines() if ln.strip()}
    assert ".control" not in heads and "shell" not in heads and ".endc" not in heads
    assert check_deck(top, lib) == []
    for key, val in (("sfq.custom_cells", "x.cir\n.control\nshell id"), ("sfq.custom_cells", "../../etc/passwd.cir"),
                     ("sfq.custom_cells", "a b.cir"), ("sfq.cell_library", "/opt/RSFQlib\n.control")):
        with pytest.raises(SpikeforgeError) as e:
            SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(extra={key: val}))
        assert e.value.field == key
    ok = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(extra={"sfq.custom_cells": "my/cells_v2.cir"}))
    assert ".include my/cells_v2.cir" in ok.files["code/top.cir"]
