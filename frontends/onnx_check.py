"""Structural pre-checks of an ONNX model, run before the ONNX frontend reads any node.

Why: a fuzz of the ONNX loader raised exceptions other than the project's own on 1,090 of 10,000
inputs (43 signatures): initializer dims that disagree with their data, Gemm/Conv/pool attributes
missing or out of range, ops with missing inputs, BatchNormalization vectors of different lengths,
shapes that do not chain (`mat1 and mat2 shapes cannot be multiplied`). Each of these is checked here
and reported as one `SpikeforgeError` naming the file, the node (or initializer) and the field. Op
coverage and semantics stay in frontends/onnx.py; this module only decides "well-formed or not".
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from spikeforge.errors import SpikeforgeError

MAX_NODES = 100_000
MAX_TENSOR_ELEMENTS = 1 << 28
MAX_ATTR = 4096

#: op -> (fewest, most) inputs, for the ops the frontend converts
ARITY = {"Gemm": (2, 3), "MatMul": (2, 2), "Add": (2, 2), "Conv": (2, 3), "Relu": (1, 1), "Clip": (1, 3),
         "AveragePool": (1, 1), "GlobalAveragePool": (1, 1), "Flatten": (1, 1), "Reshape": (2, 2),
         "BatchNormalization": (5, 5), "Identity": (1, 1), "Dropout": (1, 3)}


def _err(reason: str, file: str | None, node: str | None = None, field: str | None = None) -> SpikeforgeError:
    return SpikeforgeError(reason, file=file, node=node, field=field)


def _ints(vals, name: str, lo: int, file, node, n: int | None = None) -> list[int]:
    vals = [int(v) for v in vals]
    if n is not None and len(vals) != n:
        raise _err(f"expected {n} values, found {len(vals)}", file, node, name)
    if any(v < lo or v > MAX_ATTR for v in vals):
        raise _err(f"expected integers in [{lo}, {MAX_ATTR}], found {vals}", file, node, name)
    return vals


def _initializers(g: onnx.GraphProto, file: str | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for init in g.initializer:
        dims = list(init.dims)
        if any(d < 0 for d in dims):
            raise _err(f"negative dimension in {dims}", file, init.name, "dims")
        count = math.prod(dims)
        if count == 0:
            raise _err(f"zero-size tensor (dims {dims})", file, init.name, "dims")
        if count > MAX_TENSOR_ELEMENTS:
            raise _err(f"tensor of {count} elements exceeds the maximum {MAX_TENSOR_ELEMENTS}", file, init.name,
                       "dims")
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise _err("external tensor data is not supported (save the model with its weights inside)", file,
                       init.name, "data_location")
        try:
            arr = numpy_helper.to_array(init)
        except Exception as exc:  # protobuf/numpy raise many kinds for dims that disagree with the data
            raise _err(f"data does not match dims {dims} ({type(exc).__name__})", file, init.name, "dims") from None
        if arr.size != count:
            raise _err(f"data holds {arr.size} values, dims {dims} need {count}", file, init.name, "dims")
        if arr.dtype.kind not in "biuf":
            raise _err(f"dtype {arr.dtype} is not numeric", file, init.name, "data_type")
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            raise _err(f"dtype {arr.dtype}: float tensors must be float32 (the converter computes in float32)",
                       file, init.name, "data_type")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise _err("contains NaN or inf", file, init.name, "data")
        out[init.name] = arr
    return out


def _node_checks(n: onnx.NodeProto, consts: dict[str, np.ndarray], file: str | None) -> None:
    name = n.name or n.op_type
    a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
    t = n.op_type
    if t == "Gemm":
        for k in ("transA", "transB"):
            if int(a.get(k, 0)) not in (0, 1):
                raise _err(f"expected 0 or 1, found {a[k]}", file, name, k)
        for k in ("alpha", "beta"):
            if not math.isfinite(float(a.get(k, 1.0))):
                raise _err(f"expected a finite number, found {a[k]}", file, name, k)
        w = consts.get(n.input[1])
        if w is not None and w.ndim != 2:
            raise _err(f"expected a 2-d weight, found shape {w.shape}", file, name, "B")
        c = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if c is not None and w is not None:
            units = w.shape[0] if int(a.get("transB", 0)) else w.shape[1]
            # ONNX: C broadcasts to (batch, units); a per-sample bias is (units,), (1, units) or a scalar
            if c.ndim > 2 or (c.ndim >= 1 and c.shape[-1] not in (1, units)) or (c.ndim == 2 and c.shape[0] != 1):
                raise _err(f"bias shape {c.shape} does not broadcast to (batch, {units})", file, name, "C")
    elif t == "Conv":
        w = consts.get(n.input[1])
        d = (w.ndim - 2) if w is not None else len(a.get("kernel_shape", [])) or None
        if w is not None and w.ndim not in (3, 4):
            raise _err(f"expected a 3-d or 4-d weight, found shape {w.shape}", file, name, "W")
        if d:
            if "kernel_shape" in a:
                ks = _ints(a["kernel_shape"], "kernel_shape", 1, file, name, d)
                if w is not None and list(w.shape[2:]) != ks:
                    raise _err(f"kernel_shape {ks} disagrees with the weight {list(w.shape[2:])}", file, name,
                               "kernel_shape")
            _ints(a.get("strides", [1] * d), "strides", 1, file, name, d)
            _ints(a.get("dilations", [1] * d), "dilations", 1, file, name, d)
            _ints(a.get("pads", [0] * 2 * d), "pads", 0, file, name, 2 * d)
        group = _ints([a.get("group", 1)], "group", 1, file, name)[0]
        if w is not None and w.shape[0] % group:
            raise _err(f"output channels {w.shape[0]} are not divisible by group {group}", file, name, "group")
        b = consts.get(n.input[2]) if len(n.input) > 2 else None
        if b is not None and w is not None and (b.ndim != 1 or b.size != w.shape[0]):
            raise _err(f"expected a 1-d bias of {w.shape[0]} values, found shape {b.shape}", file, name, "B")
    elif t == "AveragePool":
        if "kernel_shape" not in a:
            raise _err("required attribute is missing", file, name, "kernel_shape")
        k = _ints(a["kernel_shape"], "kernel_shape", 1, file, name)
        _ints(a.get("strides", k), "strides", 1, file, name, len(k))
        pads = _ints(a.get("pads", [0] * 2 * len(k)), "pads", 0, file, name, 2 * len(k))
        if any(p >= kk for p, kk in zip(pads, k + k)):
            raise _err(f"pads {pads} must be smaller than the kernel {k}", file, name, "pads")
    elif t == "BatchNormalization":
        vecs = [consts.get(i) for i in n.input[1:5]]
        if all(v is not None for v in vecs):
            lengths = [v.size for v in vecs]
            if len(set(lengths)) != 1 or any(v.ndim != 1 for v in vecs):
                raise _err(f"scale, B, mean and var must be 1-d of one length, found shapes "
                           f"{[v.shape for v in vecs]}", file, name, "scale")
            eps = float(a.get("epsilon", 1e-5))
            if not (math.isfinite(eps) and eps >= 0):
                raise _err(f"expected a finite epsilon >= 0, found {eps}", file, name, "epsilon")
            if np.any(vecs[3] + eps <= 0):
                raise _err("var + epsilon must be > 0", file, name, "input_var")
    elif t == "Flatten":
        if not isinstance(a.get("axis", 1), int):
            raise _err(f"expected an integer axis, found {a.get('axis')!r}", file, name, "axis")


def check_model(m: onnx.ModelProto, file: str | None) -> None:
    """Refuse a malformed ONNX model with one error naming node/initializer and field."""
    g = m.graph
    if len(g.node) > MAX_NODES:
        raise _err(f"{len(g.node)} nodes exceed the maximum {MAX_NODES}", file)
    consts = _initializers(g, file)
    for vi in g.input:
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value <= 0 and i > 0:
                raise _err(f"dimension {i} is {d.dim_value}; expected > 0", file, vi.name, "shape")
    known = set(consts) | {vi.name for vi in g.input} | {""}
    for n in g.node:
        name = n.name or n.op_type
        lo, hi = ARITY.get(n.op_type, (0, 1 << 16))
        present = len([i for i in n.input if i]) if n.op_type in ("Gemm", "Conv", "Clip", "Dropout") else len(n.input)
        if not lo <= present <= hi or (lo and any(not i for i in n.input[:lo])):
            raise _err(f"{n.op_type} takes {lo}..{hi} inputs, found {list(n.input)}", file, name, "input")
        for i in n.input:
            if i not in known:
                raise _err(f"input {i!r} is not produced by an earlier node, an initializer or a graph input",
                           file, name, "input")
        if n.op_type == "Constant":
            for x in n.attribute:
                if x.name == "value" and n.output:
                    t = onnx.TensorProto()
                    t.CopyFrom(x.t)
                    t.name = n.output[0]
                    consts.update(_initializers(onnx.GraphProto(initializer=[t]), file))
        try:
            _node_checks(n, consts, file)
        except (TypeError, ValueError, OverflowError) as exc:  # an attribute of the wrong type or empty
            raise _err(f"{n.op_type} has an attribute of the wrong type or size ({type(exc).__name__})", file,
                       name, "attribute") from None
        known.update(n.output)
    for o in g.output:
        if o.name not in known:
            raise _err(f"graph output {o.name!r} is not produced by any node", file, o.name)
    try:
        onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    except Exception as exc:  # InferenceError and friends: the message names op and node
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise _err(f"shapes or types do not chain ({first})", file, field="shape") from None
