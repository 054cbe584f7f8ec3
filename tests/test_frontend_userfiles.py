"""Files as users bring them: NIR with a wrong declared shape, state_dicts with their class in a file,
one calibration format, batch-first inputs."""

from __future__ import annotations

import json
import os

import nir
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spikeforge import graph as G
from spikeforge.calibration import analog_samples, read_calibration, spike_trains
from spikeforge.cli import main
from spikeforge.errors import GraphError, InputError
from spikeforge.frontends import load_model
from spikeforge.inputs import check_inputs


def _bad_output_nir(path) -> None:
    """What some exporters write: an Output typed [1, 1, 1] behind a LIF of shape [1] (fails nir's type check)."""
    lif = nir.LIF(tau=np.full(1, 0.01), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.ones(1))
    nodes = {"input": nir.Input(np.array([1])), "fc": nir.Affine(np.full((1, 1), 2.0), np.zeros(1)), "lif": lif,
             "output": nir.Output(np.array([1, 1, 1]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False,
                     metadata={"spikeforge.dt": 1e-3})
    nir.write(str(path), g)  # nir's own writer: another tool's file, not ours


def test_lenient_repairs_declared_output_shape_with_one_warning(tmp_path):
    p = tmp_path / "exported.nir"
    _bad_output_nir(p)
    with pytest.raises(GraphError, match="--lenient"):
        load_model(p)
    g = load_model(p, lenient=True)
    warnings = G.pop_warnings(g)
    assert len(warnings) == 1 and "[1, 1, 1] -> [1]" in warnings[0]
    assert G.node_shape(g.nodes["output"], "input") == (1,)
    r = CliRunner()
    res = r.invoke(main, ["compile", str(p), "-b", "cpu-reference", "-o", str(tmp_path / "a")])
    assert res.exit_code == 2 and "--lenient" in res.output
    res = r.invoke(main, ["compile", str(p), "-b", "cpu-reference", "-o", str(tmp_path / "a"), "--lenient", "--json"])
    assert res.exit_code == 0, res.output
    out = res.output[res.output.index("{"):]
    assert len(json.loads(out)["warnings"]) == 1
    assert G.read(tmp_path / "a" / "reference.nir") is not None  # written repaired: later commands read it


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


NET_SRC = """import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 6), torch.nn.Linear(6, 3)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
"""


def test_model_class_file_and_cwd_forms_and_input_shape(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mynet.py").write_text(NET_SRC)
    (tmp_path / "cwdnet_i13.py").write_text(NET_SRC)
    torch.manual_seed(0)
    torch.save(_Net().state_dict(), tmp_path / "w.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", analog=rng.random((50, 8)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    r = CliRunner()
    for ref in ("models/mynet.py:Net", "cwdnet_i13:Net"):
        res = r.invoke(main, ["convert", "w.pt", "-o", "w.nir", "--model-class", ref, "--calibration", "cal.npz"])
        assert res.exit_code == 0, res.output
        assert len(G.read("w.nir").nodes) == 6
    res = r.invoke(main, ["convert", "w.pt", "-o", "w2.nir", "--model-class", "cwdnet_i13:Net"])
    assert res.exit_code == 2 and "--input-shape" in res.output and "input_shape=(" not in res.output.split("Python")[0]
    res = r.invoke(main, ["convert", "w.pt", "-o", "w2.nir", "--input-shape", "0,3"])
    assert res.exit_code == 2 and "--input-shape" in res.output
    res = r.invoke(main, ["convert", "w.pt", "-o", "w2.nir"])
    assert res.exit_code == 2 and "--model-class" in res.output
    res = r.invoke(main, ["convert", "w.pt", "-o", "w2.nir", "--model-class", "nowhere/x.py:Net", "--input-shape", "8"])
    assert res.exit_code == 2 and "cannot import --model-class" in res.output
    assert os.getcwd() == str(tmp_path)


def test_one_calibration_format(tmp_path):
    rng = np.random.default_rng(0)
    analog = rng.random((20, 1, 4, 4)).astype(np.float32)
    trains = (rng.random((10, 20, 1, 4, 4)) < analog).astype(np.uint8)
    np.savez(tmp_path / "c.npz", analog=analog, input=trains, labels=np.arange(20))
    cal = read_calibration(tmp_path / "c.npz")
    np.testing.assert_array_equal(analog_samples(cal, (1, 4, 4)), analog)
    only_spikes = read_calibration({"input": trains})
    np.testing.assert_allclose(analog_samples(only_spikes, (16,)), trains.mean(0).reshape(20, 16))
    with pytest.raises(InputError, match=r"c\.npz.*calibration array .analog.*expected \(N, 3, 3\)"):
        analog_samples(cal, (3, 3))
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([1, 4, 4])), "output": nir.Output(np.array([1, 4, 4]))},
                         edges=[("input", "output")])
    st = spike_trains(read_calibration({"analog": analog}), graph, 7)
    assert st["input"].shape == (7, 20, 1, 4, 4) and set(np.unique(st["input"])) <= {0.0, 1.0}
    with pytest.raises(InputError, match=r"expected spike trains \(T, B, 1, 4, 4\)"):
        spike_trains(read_calibration({"input": rng.random((10, 20, 5))}), graph, 7)


def test_batch_first_inputs_warned_and_supported():
    graph = nir.NIRGraph(nodes={"input": nir.Input(np.array([4])), "output": nir.Output(np.array([4]))},
                         edges=[("input", "output")], metadata={"spikeforge.timesteps": 20})
    x = np.zeros((360, 20, 4), np.float32)       # 360 samples of 20 steps, batch first
    notes: list[str] = []
    inputs, _ = check_inputs({"input": x}, graph, notes=notes)
    assert inputs["input"].shape == (360, 20, 4) and len(notes) == 1 and "--batch-first" in notes[0]
    inputs, _ = check_inputs({"input": x}, graph, batch_first=True, notes=notes)
    assert inputs["input"].shape == (20, 360, 4) and len(notes) == 1
    check_inputs({"input": np.zeros((20, 360, 4))}, graph, notes=notes)   # time-major: no warning
    assert len(notes) == 1


def test_dt_longer_than_tau_is_warned_on_every_board():
    from spikeforge.guards import dt_warnings
    from spikeforge.interfaces import CompileOptions
    from spikeforge.models import path as model_path
    from spikeforge.pipeline import compile_model

    art = compile_model(model_path("digits_snn.nir"), "cpu-reference", CompileOptions(dt=1e-3))
    assert sum("forgets the state every step" in w for w in art.meta["warnings"]) == 2   # lif1, lif2: tau = 1e-3
    assert not compile_model(model_path("digits_snn.nir"), "cpu-reference").meta.get("warnings")
    g = G.read(model_path("digits_snn.nir"))
    assert all("unstable" in w for w in dt_warnings(g, 3e-3)) and len(dt_warnings(g, 3e-3)) == 2


def test_foreign_nir_reset_loss_is_warned_only_where_it_applies():
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "models"
    if not shared.is_dir():
        pytest.skip("shared/models not present")
    sinabs = G.pop_warnings(load_model(shared / "cnn_sinabs.nir"))        # Sinabs IAF: subtract by default
    assert len(sinabs) == 1 and "no reset mode" in sinabs[0] and "'1'" in sinabs[0]
    assert G.pop_warnings(load_model(shared / "lif_norse.nir")) == []     # Norse LIF resets to zero, as NIR
