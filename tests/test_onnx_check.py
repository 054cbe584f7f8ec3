"""ONNX structural pre-checks (frontends/onnx_check.py): the crash signatures of the issue-19 fuzz are
clean errors naming the node or initializer and the field; valid models still load."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from spikeforge.errors import SpikeforgeError
from spikeforge.frontends import load_model
from tests.fuzzlib import onnx_base


def _load(tmp_path, m, calib):
    p = tmp_path / "m.onnx"
    p.write_bytes(m.SerializeToString())
    return load_model(p, calibration=calib, timesteps=5)


def _init(m, name):
    return next(t for t in m.graph.initializer if t.name == name)


def _node(m, name):
    return next(n for n in m.graph.node if n.name == name)


@pytest.mark.parametrize("kind", [0, 1])
def test_valid_models_still_load(tmp_path, kind):
    m, calib = onnx_base(kind)
    assert _load(tmp_path, m, calib).nodes


def _case(name):
    m, calib = onnx_base(0 if name in ("zero", "dims", "chain", "missing", "ghost", "gemm_attr", "bias") else 1)
    if name == "zero":
        _init(m, "w1").CopyFrom(numpy_helper.from_array(np.zeros((0, 4), np.float32), "w1"))
        return m, calib, "w1", "zero-size"
    if name == "dims":
        t = _init(m, "w1")
        del t.dims[:]
        t.dims.extend([9, 9])
        return m, calib, "w1", "dims"
    if name == "chain":  # 'mat1 and mat2 shapes cannot be multiplied' at conversion time before
        _init(m, "w2").CopyFrom(numpy_helper.from_array(np.ones((3, 5), np.float32), "w2"))
        return m, calib, None, "do not chain"
    if name == "missing":
        del _node(m, "fc2").input[1:]
        return m, calib, "fc2", "inputs"
    if name == "ghost":
        _node(m, "relu1").input[0] = "nowhere"
        return m, calib, "relu1", "not produced"
    if name == "gemm_attr":
        _node(m, "fc1").attribute[0].i = 7
        return m, calib, "fc1", "transB"
    if name == "bias":
        _init(m, "b1").CopyFrom(numpy_helper.from_array(np.ones((2, 8), np.float32), "b1"))
        return m, calib, "fc1", "broadcast"
    if name == "bn":
        _init(m, "v").CopyFrom(numpy_helper.from_array(np.ones(3, np.float32), "v"))
        return m, calib, "bn", "one length"
    if name == "group":
        conv = _node(m, "conv")
        conv.attribute.append(helper.make_attribute("group", 0))
        return m, calib, "conv", "group"
    if name == "stride":
        next(a for a in _node(m, "conv").attribute if a.name == "strides").ints[0] = 0
        return m, calib, "conv", "strides"
    if name == "pool":
        pool = _node(m, "pool")
        keep = [a for a in pool.attribute if a.name != "kernel_shape"]
        del pool.attribute[:]
        pool.attribute.extend(keep)
        return m, calib, "pool", "kernel_shape"
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["zero", "dims", "chain", "missing", "ghost", "gemm_attr", "bias", "bn", "group",
                                  "stride", "pool"])
def test_malformed_models_are_clean_errors(tmp_path, name):
    m, calib, where, needle = _case(name)
    with pytest.raises(SpikeforgeError, match=needle) as exc:
        _load(tmp_path, m, calib)
    assert "m.onnx" in str(exc.value)
    if where:
        assert where in str(exc.value)


def test_regressions_from_the_10k_run(tmp_path):
    """Attributes without a value, float64 initializers and a 2-d conv bias: clean errors, not crashes."""
    m, calib = onnx_base(0)
    attr = _node(m, "fc1").attribute[0]
    attr.type = 0  # UNDEFINED: get_attribute_value gives None
    with pytest.raises(SpikeforgeError, match="attribute"):
        _load(tmp_path, m, calib)
    m, calib = onnx_base(0)
    _init(m, "w1").CopyFrom(numpy_helper.from_array(np.ones((8, 4), np.float64), "w1"))
    with pytest.raises(SpikeforgeError, match="float32"):
        _load(tmp_path, m, calib)
    m, calib = onnx_base(1)
    _init(m, "cb").CopyFrom(numpy_helper.from_array(np.zeros((1, 2), np.float32), "cb"))
    with pytest.raises(SpikeforgeError, match="1-d bias"):
        _load(tmp_path, m, calib)
