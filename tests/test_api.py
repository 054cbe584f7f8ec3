"""The Python API (`import spikeforge as sf`): what a notebook user calls, on the bundled snnTorch model
(exported by snnTorch's own NIR exporter)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest

import spikeforge as sf
from spikeforge.errors import InputError, SpikeforgeError

ROOT = Path(__file__).resolve().parents[1]


def test_notebook_example_runs_without_cli():
    """examples/notebook_api.py: snnTorch model -> loihi2 and spinn3 -> verify -> profile, all in Python."""
    script = ROOT / "examples" / "notebook_api.py"
    assert "spikeforge.cli" not in script.read_text() and "subprocess" not in script.read_text()
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    table = res.stdout.split("latency/inf", 1)[1]
    assert "loihi2   True" in table and "spinn3   True" in table


def test_compile_verify_profile_objects(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        art = sf.compile(sf.bundled("digits_snn.nir"), "loihi2", bit_budget=50, output=tmp_path / "a")
    raised = [str(w.message) for w in caught if issubclass(w.category, sf.SpikeforgeWarning)]
    assert raised and raised == art.warnings  # each kept warning raised exactly once
    assert any("round to 0 at 2 bits" in w for w in art.warnings)
    text = repr(art)
    assert "board='loihi2'" in text and "fc1 w2/a1" in text and "cores_used 2" in text
    assert "<table>" in art._repr_html_() and "warning" in art._repr_html_()
    again = sf.Artifact.load(tmp_path / "a")
    assert again.warnings == art.warnings
    res = sf.verify(again, sf.bundled("digits_inputs.npz"), tolerance=0.2)
    assert "agreement" in repr(res) and res.metrics["samples"] == 360
    prof = sf.profile(again, sf.bundled("digits_inputs.npz"))
    assert prof.energy_total > 0 and "per_inference" in repr(prof) and "<table>" in prof._repr_html_()


def test_inputs_as_arrays_and_bad_files(tmp_path):
    art = sf.compile(sf.bundled("digits_snn.nir"), "cpu-reference")
    x = np.load(sf.bundled("digits_inputs.npz"))["input"][:, :8]
    trace = sf.emulate(art, x)
    assert trace.outputs["output"].shape == (25, 8, 10) and "output (25, 8, 10)" in repr(trace)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(InputError, match=r"\.npy.*npz"):
        sf.verify(art, tmp_path / "x.npy")
    with pytest.raises(SpikeforgeError, match="tolerance"):
        sf.verify(art, x, tolerance=5)


def _if_graph() -> nir.NIRGraph:
    """Two IF layers: SpiNNaker has no IF, so its lowering warns (both recorded and via Python warnings)."""
    rng = np.random.default_rng(0)
    nodes = {"input": nir.Input(input_type={"input": np.array([8])}),
             "fc": nir.Linear(weight=rng.normal(0, 1, (6, 8))),
             "if1": nir.IF(r=np.ones(6), v_threshold=np.ones(6)),
             "output": nir.Output(output_type={"output": np.array([6])})}
    edges = [("input", "fc"), ("fc", "if1"), ("if1", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": 1e-3})


def test_python_warnings_of_a_backend_are_raised_once():
    """SpiNNaker's lowering warns through Python's warnings too; the API shows each text once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        art = sf.compile(_if_graph(), "spinn3")
    texts = [str(w.message) for w in caught]
    assert all(issubclass(w.category, sf.SpikeforgeWarning) for w in caught)
    assert len(texts) == len(set(texts)) > 0
    assert not any(t.endswith(": " + o) for t in texts for o in texts)
    assert texts == art.warnings and any("IF" in t for t in texts)


def test_names_that_are_also_submodules_stay_callable():
    import spikeforge.boards
    import spikeforge.verify

    names = [b.name for b in sf.boards()]
    assert "loihi2" in names and "loihi2" in repr(sf.boards())
    assert callable(sf.verify) and spikeforge.verify.verify.__module__ == "spikeforge.verify"
    assert spikeforge.boards.list_boards()[0].name == names[0]
