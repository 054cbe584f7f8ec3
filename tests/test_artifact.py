"""Artifacts: atomic, byte-reproducible save; tamper detection on load."""

from __future__ import annotations

import pytest

from spikeforge.artifact import Artifact
from spikeforge.errors import SpikeforgeError
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model

from .conftest import lif_mlp


def _tree_bytes(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_compile_twice_gives_identical_bytes(tmp_path):
    a = compile_model(lif_mlp(), "cpu-reference", CompileOptions(seed=3)).save(tmp_path / "a")
    b = compile_model(lif_mlp(), "cpu-reference", CompileOptions(seed=3)).save(tmp_path / "b")
    assert _tree_bytes(a) == _tree_bytes(b)


def test_load_roundtrip_and_tamper(tmp_path):
    path = compile_model(lif_mlp(), "cpu-reference").save(tmp_path / "art")
    art = Artifact.load(path)
    assert art.board == "cpu-reference" and art.meta["dt"] == 1e-3
    (path / "reference.nir").write_bytes(b"x")
    with pytest.raises(SpikeforgeError, match="modified after compile"):
        Artifact.load(path)


def test_save_replaces_existing_artifact_but_not_foreign_dir(tmp_path):
    art = compile_model(lif_mlp(), "cpu-reference")
    art.save(tmp_path / "art")
    art.save(tmp_path / "art")  # overwrite an artifact: fine
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(SpikeforgeError, match="not a spikeforge artifact"):
        art.save(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
