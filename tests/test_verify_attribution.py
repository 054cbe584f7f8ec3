"""Where verify says the loss comes from: by stage (passes vs board) and by layer (first divergent NIR node)."""

from __future__ import annotations

import copy
import json

import numpy as np
from click.testing import CliRunner

from spikeforge import models
from spikeforge.cli import main
from spikeforge.interfaces import CompileOptions
from spikeforge.npzio import load_npz, save_npz
from spikeforge.pipeline import compile_model
from spikeforge.semantics import record
from spikeforge.verify import verify

from .verify_helpers import QuirkBackend, chain, fast_backend


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _x(seed: int = 0, T: int = 60, B: int = 8, n: int = 6) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, n)) < 0.3).astype(np.float32)


def _misquantised(art, node: str = "fc2"):
    """A transformed graph with one layer's weights binarised to sign x 0.3 (a broken 1-bit quantiser)."""
    prog = copy.deepcopy(art.reference)
    w = np.asarray(prog.nodes[node].weight)
    prog.nodes[node].weight = (np.sign(w) * 0.3).astype(np.float32)
    return prog


def test_layers_name_the_first_divergent_node_of_a_misquantised_3_layer_net(tmp_path):
    art = compile_model(chain([6, 12, 10, 4]), "cpu-reference", CompileOptions())
    art.program = _misquantised(art, "fc2")
    path = art.save(tmp_path / "art")
    save_npz(tmp_path / "x.npz", {"input": _x()})
    r = run("verify", path, "--input", tmp_path / "x.npz", "--layers", "--json")
    assert r.exit_code == 1, r.output
    d = json.loads(r.output)
    layer = next(c for c in d["checks"] if c["name"] == "attribution:layer")
    assert "first divergent NIR node 'lif2' (fed by fc2)" in layer["detail"]
    rows = {row["node"]: row for row in d["layers"]}
    assert not rows["lif1"]["divergent"] and rows["lif2"]["divergent"]
    # without --layers a failing small run is attributed automatically
    r = run("verify", path, "--input", tmp_path / "x.npz", "--json")
    assert "'lif2'" in next(c for c in json.loads(r.output)["checks"] if c["name"] == "attribution:layer")["detail"]


def test_layers_on_loihi_name_the_layer_behind_corrupted_weights():
    """Loihi's emulator reports `<pop>.s` probes under the NIR node names."""
    art = compile_model(chain([6, 12, 10, 4]), "loihi2", CompileOptions())
    be = fast_backend("loihi")
    ok = verify(art, {"input": _x()}, layers=True, backend=be)
    assert next(c for c in ok.checks if c.name == "attribution:layer").detail.startswith("no hidden layer diverges")
    # every row group of the positive connection (dense `weights` or sparse `w_data`, loihi.row_exponents)
    for key in [k for k in art.arrays if k.startswith("conn/lif1->lif2+") and k.endswith(("/weights", "/w_data"))]:
        art.arrays[key] = art.arrays[key] // 3
    res = verify(art, {"input": _x()}, layers=True, backend=be)
    assert not res.passed
    assert "first divergent NIR node 'lif2'" in next(c for c in res.checks if c.name == "attribution:layer").detail


def test_layers_say_so_when_the_board_exposes_no_probes():
    from spikeforge.emulators.sfq import SFQEmulator  # noqa: F401  (the SFQ emulator gives no NIR-named probes today)

    art = compile_model(chain([6, 12, 4]), "sfq-rsfq", CompileOptions())
    res = verify(art, {"input": _x(T=20, B=2)}, layers=True)
    detail = next(c for c in res.checks if c.name == "attribution:layer").detail
    assert "layer attribution is unavailable" in detail or "diverge" in detail


def test_stage_attribution_low_bit_budget_blames_the_passes(tmp_path):
    full = load_npz(models.path("digits_inputs.npz"))
    data = tmp_path / "digits120.npz"  # 120 of the 360 test images keep this test short
    save_npz(data, {"input": full["input"][:, :120], "labels": full["labels"][:120]})
    art = tmp_path / "q"
    r = run("compile", models.path("digits_snn.nir"), "--board", "loihi2", "--bit-budget", 25, "--calibration", data,
            "-o", art)
    assert r.exit_code == 0, r.output
    d = json.loads(run("verify", art, "--input", data, "--json").output)
    stage = next(c for c in d["checks"] if c["name"] == "attribution:stage")
    assert "main source of loss: passes" in stage["detail"], stage
    assert d["metrics"]["stage.passes.accuracy_drop"] > d["metrics"]["stage.board.accuracy_drop"]


def test_stage_attribution_with_passes_off_and_a_board_quirk_blames_the_board():
    art = compile_model(chain([6, 12, 4]), "cpu-reference", CompileOptions())

    def drop_every_other_spike(outs):
        for v in outs.values():
            t = np.nonzero(v)
            v[tuple(a[::2] for a in t)] = 0
        return outs

    res = verify(art, {"input": _x()}, backend=QuirkBackend(drop_every_other_spike))
    assert not res.passed
    stage = next(c for c in res.checks if c.name == "attribution:stage")
    assert "main source of loss: board (100%" in stage.detail and "no pass ran" in stage.detail


def test_semantic_warnings_become_checks_that_fail_when_the_output_diverges():
    art = compile_model(chain([6, 12, 1]), "cpu-reference", CompileOptions())
    record(art.meta, "lif2", "leak_rounded", "leak 0.0004 per step rounds to 0", 1.0)
    ok = verify(art, {"input": _x()})
    sem = next(c for c in ok.checks if c.name == "semantic:lif2:leak_rounded")
    assert sem.passed and "rounds to 0" in sem.detail and "within tolerance" in sem.detail

    def add_spikes(outs):
        for v in outs.values():
            v[::2] = 1
        return outs

    bad = verify(art, {"input": _x()}, backend=QuirkBackend(add_spikes))
    sem = next(c for c in bad.checks if c.name == "semantic:lif2:leak_rounded")
    assert not sem.passed and "BEYOND tolerance" in sem.detail


def test_compile_prints_each_semantic_warning_once(tmp_path, monkeypatch):
    from spikeforge.backends.reference.backend import ReferenceBackend

    orig = ReferenceBackend.lower

    def lower(self, graph, board, options):
        art = orig(self, graph, board, options)
        for _ in range(2):
            record(art.meta, "lif1", "reset_changed", "subtract reset lowered as reset to zero", 0.3)
        art.meta["semantic_warnings"].append(dict(art.meta["semantic_warnings"][0]))  # a duplicate sneaks in
        return art

    monkeypatch.setattr(ReferenceBackend, "lower", lower)
    from spikeforge import graph as G

    G.write(chain([6, 12, 4]), tmp_path / "m.nir")
    r = CliRunner().invoke(main, ["compile", str(tmp_path / "m.nir"), "--board", "cpu-reference", "-o",
                                  str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert r.output.count("subtract reset lowered as reset to zero") == 1
