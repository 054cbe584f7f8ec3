"""Graph core: read/write, validation errors that name node/field/value, scheduling, flattening."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge import graph as G
from spikeforge.errors import GraphError

from .conftest import lif_mlp


def test_roundtrip_write_read(tmp_path):
    g = lif_mlp()
    G.write(g, tmp_path / "m.nir")
    back = G.read(tmp_path / "m.nir")
    assert set(back.nodes) == set(g.nodes)
    np.testing.assert_array_equal(back.nodes["fc1"].weight, g.nodes["fc1"].weight)
    assert float(back.metadata["spikeforge.dt"]) == 1e-3


def test_write_is_byte_deterministic(tmp_path):
    g = lif_mlp()
    G.write(g, tmp_path / "a.nir")
    G.write(g, tmp_path / "b.nir")
    assert (tmp_path / "a.nir").read_bytes() == (tmp_path / "b.nir").read_bytes()


def test_read_missing_and_corrupt(tmp_path):
    with pytest.raises(GraphError, match="file not found"):
        G.read(tmp_path / "nope.nir")
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"this is not hdf5")
    with pytest.raises(GraphError, match="not a readable NIR file") as exc:
        G.read(bad)
    assert str(bad) in str(exc.value)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("tau", 0.0, "time constant must be > 0"), ("v_threshold", np.nan, "not finite")],
)
def test_validate_names_node_field_value(field, value, match):
    g = lif_mlp()
    arr = np.array(getattr(g.nodes["lif1"], field), dtype=np.float64)
    arr[2] = value
    setattr(g.nodes["lif1"], field, arr)
    with pytest.raises(GraphError, match=match) as exc:
        G.validate(g)
    assert exc.value.node == "lif1" and exc.value.field == field
    assert "lif1" in str(exc.value) and field in str(exc.value)


def test_validate_nan_weight():
    g = lif_mlp()
    g.nodes["fc2"].weight[0, 0] = np.nan
    with pytest.raises(GraphError, match="fc2.*weight.*not finite"):
        G.validate(g)


def test_validate_shape_mismatch():
    g = lif_mlp()
    g.nodes["fc2"] = nir.Linear(weight=np.ones((3, 7), np.float32))
    with pytest.raises(GraphError, match="shape mismatch on edge lif1 -> fc2"):
        G.validate(g)


def test_validate_unknown_edge_and_missing_io():
    g = lif_mlp()
    g.edges.append(("lif2", "ghost"))
    with pytest.raises(GraphError, match="ghost"):
        G.validate(g)
    g = lif_mlp()
    del g.nodes["output"]
    g.edges = [e for e in g.edges if e[1] != "output"]
    with pytest.raises(GraphError, match="no Output"):
        G.validate(g)


def test_schedule_marks_back_edges_recurrent():
    g = lif_mlp()
    g.nodes["rec"] = nir.Linear(weight=np.eye(6, dtype=np.float32))
    g.edges += [("lif1", "rec"), ("rec", "lif1")]
    s = G.schedule(g)
    assert s.recurrent == (("rec", "lif1"),)
    pos = {n: i for i, n in enumerate(s.order)}
    assert pos["input"] < pos["fc1"] < pos["lif1"] < pos["rec"]
    assert pos["lif1"] < pos["fc2"] < pos["lif2"] < pos["output"]


def test_flatten_inlines_subgraphs():
    inner = lif_mlp()
    outer = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}), "net": inner,
               "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "net"), ("net", "output")], type_check=False,
    )
    flat = G.flatten(outer)
    assert "net.lif1" in flat.nodes and "net" not in flat.nodes
    assert ("input", "net.fc1") in flat.edges and ("net.lif2", "output") in flat.edges
    G.validate(outer)  # valid after flattening


def test_shared_nir_models_validate():
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "models"
    if not shared.exists():
        pytest.skip("shared/ models not beside this checkout")
    for name in ("lif_norse.nir", "cnn_sinabs.nir"):
        g = G.validate(G.read(shared / name))
        assert G.input_nodes(g) and G.output_nodes(g)
