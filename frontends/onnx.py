"""ONNX frontend: a ReLU network in ONNX -> layer graph -> IF-neuron SNN (frontends/convert.py).

Parsed with `onnx` after shape inference. Supported ops: Gemm, MatMul (+ Add of a constant as bias), Conv,
Relu, Clip (min 0; read as ReLU, the upper clip is recorded and ignored), AveragePool, GlobalAveragePool,
Flatten, Reshape (only to (batch, -1)), BatchNormalization (folded into the preceding Gemm/Conv), Add of two
branches, Identity and Dropout (dropped). Nodes that only compute shapes (Shape, Gather, Unsqueeze, Concat,
Constant, ...) are skipped. `onnxruntime_check` runs the same model in onnxruntime and compares.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nir
import numpy as np
import onnx
from onnx import numpy_helper

from spikeforge.errors import InputError, SpikeforgeError, UnsupportedError
from spikeforge.frontends import convert as C
from spikeforge.frontends import register
from spikeforge.frontends.onnx_check import check_model

SUPPORTED = ("Gemm", "MatMul", "Add", "Conv", "Relu", "Clip", "AveragePool", "GlobalAveragePool", "Flatten",
             "Reshape", "BatchNormalization", "Identity", "Dropout")
LAYOUT_OPS = ("Transpose", "Expand", "Tile", "Split", "Pad")
SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Constant", "Cast", "Slice", "ConstantOfShape")


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _load(model: Any) -> tuple[onnx.ModelProto, str | None]:
    if isinstance(model, onnx.ModelProto):
        return model, None
    p = Path(model)
    if not p.exists():
        raise SpikeforgeError("file not found", file=str(p))
    try:
        return onnx.load(str(p)), str(p)
    except Exception as exc:
        raise SpikeforgeError(f"not a readable ONNX file ({type(exc).__name__})", file=str(p)) from None


def _shape_of(vi: onnx.ValueInfoProto) -> list[int | None]:
    dims = vi.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def parse_onnx(model: Any) -> C.AnnGraph:
    """ONNX graph -> converter layer graph; unsupported ops raise one error naming op type and node."""
    m, file = _load(model)
    check_model(m, file)  # structure, attribute ranges, shape chaining (frontends/onnx_check.py)
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception as exc:  # shape inference is a help, not a requirement
        del exc
    g = m.graph
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedError(f"expected one graph input, found {len(inputs)}: {[i.name for i in inputs]}", file=file)
    shapes = {vi.name: _shape_of(vi) for vi in list(g.value_info) + list(g.input) + list(g.output)}
    in_shape = _shape_of(inputs[0])[1:]
    if any(d is None or d <= 0 for d in in_shape):
        raise UnsupportedError(f"input '{inputs[0].name}' has a dynamic non-batch shape {in_shape}", file=file)
    for n in g.node:  # name the real culprit (an LSTM), not the Transpose that feeds it
        if n.op_type not in SUPPORTED and n.op_type not in SHAPE_OPS and n.op_type not in LAYOUT_OPS:
            raise UnsupportedError(f"ONNX op {n.op_type} is not supported for conversion to a spiking network; "
                                   f"supported: {', '.join(SUPPORTED)}", file=file, node=n.name or n.op_type)
    ops: dict[str, C.Op] = {"input": C.Op("input", "input", [], source="input")}
    value: dict[str, str] = {inputs[0].name: "input"}   # ONNX value name -> op name
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1

    def const(name: str, node: onnx.NodeProto) -> np.ndarray:
        if name in consts:
            return consts[name]
        raise UnsupportedError(f"ONNX {node.op_type}: input '{name}' must be a constant "
                               f"(initializer)", file=file, node=node.name)

    def fresh(node: onnx.NodeProto) -> str:
        base = node.name or f"{node.op_type.lower()}_{len(ops)}"
        name, k = base, 1
        while name in ops:
            name, k = f"{base}_{k}", k + 1
        return name

    for n in g.node:
        t, a = n.op_type, _attrs(n)
        data_in = [i for i in n.input if i in value]
        if t == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(a["value"]) if "value" in a else np.asarray(
                a.get("value_float", a.get("value_floats", a.get("value_int", a.get("value_ints")))))
            continue
        if not data_in:
            if t in SHAPE_OPS or t in SUPPORTED:
                continue  # shape computation or constant folding chain, not on the data path
        if t in SHAPE_OPS and t != "Reshape":
            if t == "Shape":
                continue
            raise UnsupportedError(f"ONNX op {t} on the data path is not supported; supported: "
                                   f"{', '.join(SUPPORTED)}", file=file, node=n.name or t)
        src = value.get(n.input[0]) if n.input else None
        out = n.output[0]
        if t in ("Identity", "Dropout"):
            value[out] = src
        elif t == "Gemm":
            if a.get("transA", 0):
                raise UnsupportedError("ONNX Gemm with transA=1", file=file, node=n.name)
            w = const(n.input[1], n).astype(np.float32)
            w = w if a.get("transB", 0) else w.T
            w = w * float(a.get("alpha", 1.0))
            b = const(n.input[2], n).astype(np.float32) * float(a.get("beta", 1.0)) if len(n.input) > 2 and \
                n.input[2] else np.zeros(w.shape[0], np.float32)
            name = fresh(n)
            ops[name] = C.Op(name, "linear", [src], {"w": w, "b": np.broadcast_to(b, (w.shape[0],)).copy()},
                             source="onnx.Gemm")
            value[out] = name
        elif t == "MatMul":
            w = const(n.input[1], n).astype(np.float32)
            if w.ndim != 2:
                raise UnsupportedError(f"ONNX MatMul with a {w.ndim}-D weight", file=file, node=n.name)
            name = fresh(n)
            ops[name] = C.Op(name, "linear", [src], {"w": w.T.copy(), "b": np.zeros(w.shape[1], np.float32)},
                             source="onnx.MatMul")
            value[out] = name
        elif t == "Add":
            if len(data_in) == 2:
                name = fresh(n)
                ops[name] = C.Op(name, "add", [value[i] for i in data_in], source="onnx.Add")
                value[out] = name
            else:
                other = [i for i in n.input if i not in value][0]
                prev = ops[src]
                if prev.kind not in ("linear", "conv1d", "conv2d") or uses.get(data_in[0], 0) > 1:
                    raise UnsupportedError(f"ONNX Add adds a constant to a {prev.kind} output; "
                                           f"only a bias after Gemm/MatMul/Conv is supported", file=file, node=n.name)
                c = const(other, n).astype(np.float32).reshape(-1)
                prev.params["b"] = (prev.params["b"] + np.broadcast_to(c, prev.params["b"].shape)).astype(np.float32)
                prev.source += "+Add"
                value[out] = src
        elif t == "Conv":
            w = const(n.input[1], n).astype(np.float32)
            d = w.ndim - 2
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UnsupportedError(f"ONNX Conv with auto_pad={a['auto_pad']!r}", file=file,
                                       node=n.name)
            pads = list(a.get("pads", [0] * 2 * d))
            if pads[:d] != pads[d:]:
                raise UnsupportedError(f"ONNX Conv with asymmetric pads {pads}", file=file, node=n.name)
            if d not in (1, 2):
                raise UnsupportedError(f"ONNX Conv is {d}-D; 1-D and 2-D are supported", file=file,
                                       node=n.name)
            b = const(n.input[2], n).astype(np.float32) if len(n.input) > 2 and n.input[2] else np.zeros(
                w.shape[0], np.float32)
            name = fresh(n)
            ops[name] = C.Op(name, f"conv{d}d", [src], {
                "w": w, "b": b, "stride": tuple(a.get("strides", [1] * d)), "padding": tuple(pads[:d]),
                "dilation": tuple(a.get("dilations", [1] * d)), "groups": int(a.get("group", 1))},
                source="onnx.Conv")
            value[out] = name
        elif t in ("Relu", "Clip"):
            clip = None
            if t == "Clip":
                lo = a.get("min", None)
                hi = a.get("max", None)
                if len(n.input) > 1 and n.input[1]:
                    lo = float(const(n.input[1], n))
                if len(n.input) > 2 and n.input[2]:
                    hi = float(const(n.input[2], n))
                if lo is None or float(lo) != 0.0:
                    raise UnsupportedError(f"ONNX Clip with min={lo}; only min=0 (ReLU/ReLU6) maps "
                                           f"to IF neurons", file=file, node=n.name)
                clip = None if hi is None else float(hi)
            name = fresh(n)
            ops[name] = C.Op(name, "relu", [src], {"clip": clip}, source=f"onnx.{t}")
            value[out] = name
        elif t in ("AveragePool", "GlobalAveragePool"):
            name = fresh(n)
            if t == "GlobalAveragePool":
                shp = shapes.get(n.input[0])
                if not shp or any(s is None for s in shp[2:]):
                    raise UnsupportedError("ONNX GlobalAveragePool: unknown spatial size", file=file,
                                           node=n.name)
                k = tuple(int(s) for s in shp[2:])
                params = {"kernel": k, "stride": k, "padding": (0, 0)}
            else:
                k = tuple(a["kernel_shape"])
                pads = list(a.get("pads", [0] * 2 * len(k)))
                if len(k) != 2 or pads[:2] != pads[2:] or a.get("ceil_mode", 0) or \
                        (any(pads) and not a.get("count_include_pad", 0)):
                    raise UnsupportedError(f"ONNX AveragePool with kernel {k}, pads {pads}, ceil_mode "
                                           f"or count_include_pad=0 with padding (only plain 2-D pooling)",
                                           file=file, node=n.name)
                params = {"kernel": k, "stride": tuple(a.get("strides", k)), "padding": tuple(pads[:2])}
            ops[name] = C.Op(name, "avgpool", [src], params, source=f"onnx.{t}")
            value[out] = name
        elif t in ("Flatten", "Reshape"):
            if t == "Flatten" and int(a.get("axis", 1)) != 1:
                raise UnsupportedError(f"ONNX Flatten with axis={a.get('axis')}; only axis=1",
                                       file=file, node=n.name)
            if t == "Reshape":
                shp = shapes.get(out)
                tgt = consts.get(n.input[1])
                ok = (shp is not None and len(shp) == 2) or (tgt is not None and tgt.size == 2)
                if not ok:
                    raise UnsupportedError("ONNX Reshape is not a flatten to (batch, -1)", file=file,
                                           node=n.name)
            name = fresh(n)
            ops[name] = C.Op(name, "flatten", [src], source=f"onnx.{t}")
            value[out] = name
        elif t == "BatchNormalization":
            prev = ops[src]
            if prev.kind not in ("linear", "conv1d", "conv2d") or uses.get(n.input[0], 0) > 1:
                raise UnsupportedError("ONNX BatchNormalization must follow Gemm/Conv to be folded",
                                       file=file, node=n.name)
            gamma, beta, mean, var = (const(i, n) for i in n.input[1:5])
            C.fold_batchnorm(prev, gamma, beta, mean, var, float(a.get("epsilon", 1e-5)))
            prev.source += "+BatchNormalization(folded)"
            value[out] = src
        else:
            raise UnsupportedError(f"ONNX op {t} is not supported for conversion to a spiking network; "
                                   f"supported: {', '.join(SUPPORTED)}", file=file, node=n.name or t)
    out_name = g.output[0].name
    if out_name not in value:
        raise UnsupportedError(f"graph output '{out_name}' is not computed from the input", file=file)
    return C.AnnGraph(ops=ops, output=value[out_name], input_shape=tuple(int(d) for d in in_shape), source="onnx")


def onnxruntime_check(model: Any, x: np.ndarray, ann: C.AnnGraph | None = None) -> float:
    """Largest |onnxruntime - parsed ANN| over the batch x: the parse is exact when this is ~1e-6."""
    import onnxruntime as ort

    m, _ = _load(model)
    ann = ann or parse_onnx(m)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.asarray(x, np.float32)
    if isinstance(inp.shape[0], int) and inp.shape[0] != len(x):  # exported with a fixed batch size of 1
        ref = np.concatenate([sess.run(None, {inp.name: x[i:i + 1]})[0] for i in range(len(x))])
    else:
        ref = sess.run(None, {inp.name: x})[0]
    ours = C.evaluate(ann, x)[ann.output]
    return float(np.max(np.abs(ref.reshape(ours.shape) - ours)))


def from_onnx(path_or_model: Any, calibration: Any = None, timesteps: int = 100, percentile: float = 99.9,
              dt: float = 1e-3) -> nir.NIRGraph:
    """ONNX ReLU network -> IF-neuron NIR graph normalised on the calibration data."""
    ann = parse_onnx(path_or_model)
    graph = C.to_snn(ann, calibration, timesteps=timesteps, percentile=percentile, dt=dt)
    graph.metadata["spikeforge.frontend"] = "onnx"
    return graph


@register(".onnx")
def load_onnx(path: str | os.PathLike, *, calibration: Any = None, timesteps: int | None = None,
              percentile: float | None = None, dt: float | None = None, **_: Any) -> nir.NIRGraph:
    if calibration is None:
        raise InputError("converting an ONNX ANN needs calibration data (--calibration inputs.npz)", file=str(path))
    try:
        return from_onnx(path, calibration, timesteps=int(timesteps or 100), percentile=float(percentile or 99.9),
                         dt=float(dt or 1e-3))
    except SpikeforgeError as exc:
        raise type(exc)(exc.reason, file=exc.file or str(path), node=exc.node, field=exc.field,
                        hint=exc.hint) from None
