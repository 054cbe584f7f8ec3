"""Emitted code is data-safe: hostile node names, board names and --set values, compiled through every
backend's emitter, give scripts that parse (Python: ast.parse) and decks in which no injected statement or
card appears."""

from __future__ import annotations

import ast
import dataclasses

import nir
import pytest

from spikeforge import graph as G
from spikeforge import models
from spikeforge.boardspec import list_boards
from spikeforge.errors import SpikeforgeError
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model
from spikeforge.registry import backend_targets

EVIL = 'h"""\nINJECTED = 1\n"""\n.control\nshell touch pwned\n.endc\n\'\'\'\nINJECTED2 = 2 #'
BOARDS = [b for b in list_boards() if b.backend in backend_targets()]
#: string --set keys each backend reads that could reach an emitted file
STRING_KEYS = {
    "sfq": ("sfq.cell_library", "sfq.custom_cells"),
    "spinnaker": ("spinnaker.ring_buffer",),
    "photonic": ("conv",),
}
SCRIPT_SUFFIXES = (".py", ".sh", ".cir", ".sp", ".spice")


def _rename(g: nir.NIRGraph, mapping: dict[str, str]) -> nir.NIRGraph:
    nodes = {mapping.get(k, k): v for k, v in g.nodes.items()}
    edges = [(mapping.get(s, s), mapping.get(d, d)) for s, d in g.edges]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(g.metadata or {}), type_check=False)


def _hostile_graph(backend: str) -> nir.NIRGraph:
    g = G.read(models.path("digits_lsm.nir" if backend == "rram" else "digits_snn.nir"))
    hidden = [k for k, v in g.nodes.items() if not isinstance(v, (nir.Input, nir.Output))]
    return _rename(g, {hidden[0]: "a" + EVIL, hidden[-1]: "z" + EVIL})


def injected(rel: str, text: str) -> list[str]:
    """What of the payload became code: Python statements binding INJECTED*, or deck lines starting a card."""
    found = []
    if rel.endswith(".py"):
        tree = ast.parse(text)  # a SyntaxError fails the test: the script no longer parses
        found += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id.startswith("INJECTED")]
    if rel.endswith(SCRIPT_SUFFIXES):
        for line in text.splitlines():
            s = line.strip().lower()
            if s.startswith(("injected", ".control", "shell", ".endc")):
                found.append(line.strip())
    return found


def _check(art) -> int:
    scripts = 0
    for rel, content in art.files.items():
        if isinstance(content, bytes) or not rel.endswith(SCRIPT_SUFFIXES):
            continue
        scripts += 1
        assert injected(rel, content) == [], (art.board, rel)
    return scripts


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.name)
def test_hostile_node_and_board_names(board):
    hostile_board = dataclasses.replace(board, name=board.name + EVIL)
    extra = {"max_samples": 200} if board.backend == "photonic" else {}  # a smaller calibration set: CI time
    art = compile_model(_hostile_graph(board.backend), hostile_board, CompileOptions(timesteps=5, extra=extra))
    scripts = _check(art)
    if board.backend != "reference":
        assert scripts > 0  # the backend emits code, and it was checked


@pytest.mark.parametrize("backend", sorted(STRING_KEYS))
def test_hostile_set_values(backend):
    board = next(b for b in BOARDS if b.backend == backend)
    for key in STRING_KEYS[backend]:
        try:
            extra = {key: EVIL, **({"max_samples": 200} if backend == "photonic" else {})}
            art = compile_model(_hostile_graph(backend), board, CompileOptions(timesteps=5, extra=extra))
        except SpikeforgeError as exc:  # refused by the option's grammar: fine, if it names the key
            assert key in str(exc)
            continue
        _check(art)


def test_detector_detects():
    """The checker itself must see an injection when there is one."""
    assert "INJECTED" in injected("x.py", '"""doc"""\nINJECTED = 1\n')
    assert injected("top.cir", "* c\n.control\nshell x\n") == [".control", "shell x"]
    with pytest.raises(SyntaxError):
        injected("x.py", 'x = """\n')
