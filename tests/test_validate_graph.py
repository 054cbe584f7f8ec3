"""Graph validator regression cases (issue 19): each invalid graph is refused with node and field named,
and valid graphs from other tools still pass."""

from __future__ import annotations

import h5py
import nir
import numpy as np
import pytest

from spikeforge import graph as G
from spikeforge import refsim
from spikeforge.errors import GraphError
from tests.conftest import lif_mlp


def _conv_graph(**conv_kw) -> nir.NIRGraph:
    kw = dict(input_shape=np.array([6, 6]), weight=np.ones((2, 1, 3, 3), np.float32), stride=1, padding=0,
              dilation=1, groups=1, bias=np.zeros(2, np.float32))
    conv = nir.Conv2d(**kw)
    for k, v in conv_kw.items():  # as read from a file: nir's own constructor would crash on some of these
        setattr(conv, k, v)
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([1, 6, 6])), "conv": conv,
                               "output": nir.Output(np.array([2, 4, 4]))},
                        edges=[("input", "conv"), ("conv", "output")], type_check=False)


def expect_refused(g: nir.NIRGraph, match: str, node: str | None = None, field: str | None = None) -> GraphError:
    with pytest.raises(GraphError, match=match) as exc:
        G.validate(g, file="m.nir")
    if node is not None:
        assert exc.value.node == node
    if field is not None:
        assert exc.value.field == field
    assert "m.nir" in str(exc.value)
    return exc.value


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_threshold_must_be_positive(value):
    g = lif_mlp()
    g.nodes["lif1"].v_threshold[:] = value
    expect_refused(g, "threshold must be > 0", "lif1", "v_threshold")


def test_bias_shape_must_match_weight():
    g = lif_mlp()
    g.nodes["fc1"].bias = np.zeros(5, np.float32)
    expect_refused(g, r"expected 6 values.*found shape \(5,\)", "fc1", "bias")


def test_neuron_parameter_lengths_must_agree():
    g = lif_mlp()
    g.nodes["lif1"].tau = np.full(4, 0.01)
    expect_refused(g, "expected 6 values", "lif1", "tau")


def test_algebraic_loop_is_refused():
    g = lif_mlp()
    g.nodes["a"] = nir.Linear(weight=np.eye(6, dtype=np.float32))
    g.nodes["b"] = nir.Linear(weight=np.eye(6, dtype=np.float32))
    g.edges += [("fc1", "a"), ("a", "b"), ("b", "a"), ("b", "lif1")]
    expect_refused(g, "loop a -> b has no stateful node")


def test_self_loop_on_affine_is_refused():
    g = lif_mlp()
    g.nodes["fc1"] = nir.Affine(weight=np.eye(6, 4, dtype=np.float32), bias=np.zeros(6, np.float32))
    g.nodes["fc1b"] = nir.Affine(weight=np.eye(6, dtype=np.float32), bias=np.zeros(6, np.float32))
    g.edges += [("fc1", "fc1b"), ("fc1b", "fc1b"), ("fc1b", "lif1")]
    expect_refused(g, "loop fc1b has no stateful node", "fc1b")


def test_loop_through_a_neuron_is_valid():
    g = lif_mlp()
    g.nodes["rec"] = nir.Linear(weight=np.eye(6, dtype=np.float32))
    g.edges += [("lif1", "rec"), ("rec", "lif1")]
    out = G.validate(g)  # a loop through a stateful node is fine: no error, the graph comes back whole
    assert set(out.nodes) >= {"rec", "lif1"} and ("rec", "lif1") in out.edges


def test_missing_input_output_and_orphans():
    g = lif_mlp()
    del g.nodes["output"]
    g.edges = [e for e in g.edges if e[1] != "output"]
    expect_refused(g, "no Output node")
    g = lif_mlp()
    del g.nodes["input"]
    g.edges = [e for e in g.edges if e[0] != "input"]
    expect_refused(g, "no Input node")
    g = lif_mlp()
    g.nodes["orphan"] = nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                                v_reset=np.zeros(2))
    expect_refused(g, "not reachable from any Input", "orphan")
    g = lif_mlp()  # a dangling branch whose result nobody reads
    g.nodes["dead"] = nir.Linear(weight=np.ones((2, 6), np.float32))
    g.edges.append(("lif1", "dead"))
    expect_refused(g, "does not reach any Output", "dead")


@pytest.mark.parametrize(("kw", "field", "match"), [
    ({"bias": np.zeros(3, np.float32)}, "bias", "expected 2 values"),
    ({"groups": 0}, "groups", "integers in"),
    ({"groups": -1}, "groups", "integers in"),
    ({"groups": 2}, "weight", "channels"),
    ({"stride": 0}, "stride", "integers in"),
    ({"stride": np.array([1, 1, 1])}, "stride", "1 or 2 values"),
    ({"padding": -1}, "padding", "integers in"),
    ({"padding": "diagonal"}, "padding", "'same', 'valid'"),
    ({"dilation": 0}, "dilation", "integers in"),
    ({"dilation": 5}, "weight", "larger than the padded input"),
    ({"weight": np.ones((2, 1, 9, 9), np.float32)}, "weight", "larger than the padded input"),
    ({"weight": np.ones((2, 3, 3), np.float32)}, "weight", "4-d weight"),
])
def test_conv_attribute_ranges(kw, field, match):
    expect_refused(_conv_graph(**kw), match, "conv", field)


def test_valid_conv_passes_and_runs():
    g = G.validate(_conv_graph())
    out = refsim.simulate(g, np.ones((2, 1, 1, 6, 6), np.float32), dt=1e-3).outputs["output"]
    assert out.shape[-3:] == (2, 4, 4) or out.shape[-1] == 32


def _delay_graph(delay, n=2, dt=1e-3):
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([n])), "d": nir.Delay(np.asarray(delay, float)),
                               "output": nir.Output(np.array([n]))},
                        edges=[("input", "d"), ("d", "output")], metadata={"spikeforge.dt": dt},
                        type_check=False)


def test_empty_delay_is_refused():
    expect_refused(_delay_graph(np.zeros(0)), "at least one delay value|positive dimensions", "d")


def test_huge_delay_is_refused_before_allocation():
    """A Delay of 1e6 s at dt 1 ms asked for 46 TiB at verify time."""
    expect_refused(_delay_graph(np.full(2, 1e6)), "delay line would need", "d", "delay")
    with pytest.raises(GraphError, match="exceeds the maximum"):  # dt given only at simulation time
        refsim.simulate(_delay_graph(np.full(2, 1e6), dt=1.0), np.zeros((2, 1, 2), np.float32), dt=1e-3)


def test_negative_input_dimension_is_refused():
    g = lif_mlp()
    g.nodes["input"] = nir.Input(input_type={"input": np.array([-4])})
    expect_refused(g, "positive dimensions", "input")


def test_huge_input_is_refused():
    g = lif_mlp()
    g.nodes["input"] = nir.Input(input_type={"input": np.array([1 << 20, 1 << 20])})
    expect_refused(g, "at most", "input")


def test_non_finite_dt_metadata():
    g = lif_mlp()
    g.metadata["spikeforge.dt"] = float("inf")
    expect_refused(g, "finite time step", field="spikeforge.dt")


def test_unknown_nir_node_type_is_named(tmp_path):
    p = tmp_path / "u.nir"
    G.write(lif_mlp(), p)
    with h5py.File(p, "r+") as f:
        del f["node/nodes/fc2/type"]
        f["node/nodes/fc2/type"] = "Quantum"
    with pytest.raises(GraphError, match="unknown NIR node type 'Quantum'") as exc:
        G.read(p)
    assert "AssertionError" not in str(exc.value)


def test_reader_refuses_huge_dataset_without_reading(tmp_path):
    p = tmp_path / "big.nir"
    G.write(lif_mlp(), p)
    with h5py.File(p, "r+") as f:
        f.create_dataset("node/nodes/fc2/extra", shape=(1 << 20, 1 << 20), dtype="f8")  # sparse: not written
    with pytest.raises(GraphError, match="dataset declares"):
        G.read(p)


def test_reader_refuses_deep_nesting(tmp_path):
    p = tmp_path / "deep.nir"
    G.write(lif_mlp(), p)
    with h5py.File(p, "r+") as f:
        f.create_group("node/x/" + "/".join(["g"] * 40))
    with pytest.raises(GraphError, match="nested deeper"):
        G.read(p)


def test_regression_hdf5_segfault_file_is_a_clean_error():
    """A byte-mutated NIR file (nir-bytes fuzzer) on which HDF5 segfaults: read in a child first."""
    from pathlib import Path

    p = Path(__file__).parent / "data" / "hdf5_segfault.nir"
    with pytest.raises(GraphError, match="crashed reading it|not a readable NIR file|damaged"):
        G.read(p)


def test_a_read_that_hangs_is_stopped(tmp_path, monkeypatch):
    """Four mutated files made `inspect` run past 30 s; the trial read in a child is bounded in time."""
    import time

    from spikeforge import nirbounds

    p = tmp_path / "m.nir"
    G.write(lif_mlp(), p)
    monkeypatch.setattr(nir, "read", lambda *a, **k: time.sleep(30))  # the forked child inherits the hang
    t0 = time.monotonic()
    with pytest.raises(GraphError, match="did not finish within 0.5 s"):
        nirbounds.probe_read(p, timeout=0.5)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("link", ["soft", "external"])
def test_reader_refuses_links(tmp_path, link):
    """A soft link to an ancestor loops nir's recursive reader; an external link reads another file."""
    p = tmp_path / "l.nir"
    G.write(lif_mlp(), p)
    with h5py.File(p, "r+") as f:
        f["node/nodes/fc2/loop"] = h5py.SoftLink("/node") if link == "soft" else h5py.ExternalLink("/etc/x.h5", "/")
    with pytest.raises(GraphError, match="Link"):
        G.read(p)
