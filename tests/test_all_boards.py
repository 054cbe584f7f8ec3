"""Cross-backend guarantees every board must keep: byte-reproducible artifacts, and clean refusals."""

from __future__ import annotations

import pytest

from spikeforge import models
from spikeforge.boardspec import list_boards
from spikeforge.errors import SpikeforgeError
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model
from spikeforge.registry import backend_targets

BOARDS = [b.name for b in list_boards() if b.backend in backend_targets()]
#: the bundled model each board family is exercised with (the RRAM backend compiles reservoirs only)
MODEL = {"rram": "digits_lsm.nir"}


def _tree(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("board", BOARDS)
def test_same_input_and_seed_give_identical_artifact_bytes(board, tmp_path):
    from spikeforge.boardspec import get_board

    model = models.path(MODEL.get(get_board(board).backend, "digits_snn.nir"))
    trees = []
    for name in ("a", "b"):
        art = compile_model(model, board, CompileOptions(seed=7, timesteps=25))
        trees.append(_tree(art.save(tmp_path / name)))
    assert trees[0].keys() == trees[1].keys() and "manifest.json" in trees[0]
    different = [k for k in trees[0] if trees[0][k] != trees[1][k]]
    assert different == []


def test_every_installed_backend_has_a_board():
    used = {b.backend for b in list_boards()}
    assert set(backend_targets()) <= used


@pytest.mark.parametrize("board", BOARDS)
def test_unknown_model_type_is_a_clear_error(board, tmp_path):
    p = tmp_path / "model.xyz"
    p.write_text("nothing")
    with pytest.raises(SpikeforgeError, match="unknown model type"):
        compile_model(p, board)
