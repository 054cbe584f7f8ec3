"""ONNX frontend: a ReLU network in ONNX -> layer graph -> IF-neuron SNN (frontends/convert.py).

Parsed with `onnx` after shape inference. Supported ops: Gemm, MatMul (+ Add of a constant as bias), Conv,
Relu, Clip (min 0; read as ReLU, the upper clip is recorded and ignored), AveragePool, GlobalAveragePool,
Flatten, Reshape (only to (batch, -1)), BatchNormalization (folded into the preceding Gemm/Conv, or, after a
ReLU, into the following Gemm/MatMul/unpadded Conv), Add of two branches, Identity and Dropout (dropped). Nodes
whose inputs are all constants (Constant, an Identity around an initializer, a transposed weight, shape
arithmetic) are evaluated with onnx's reference evaluator. These are the spellings both `torch.onnx.export`
exporters (TorchScript-based and dynamo) write for Linear/Conv/BatchNorm/ReLU/AvgPool/Flatten/Dropout models. `onnxruntime_check` runs the same model in onnxruntime and compares.
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


def _bias(b: np.ndarray, n: int, node: onnx.NodeProto, file: str | None, channel_axis: int = -1) -> np.ndarray:
    """A bias of any broadcastable spelling, (n,), (1, n), (1, C, 1, 1) or a scalar, as a flat (n,) vector."""
    b = np.asarray(b, np.float32)
    if b.size == 1:
        return np.full(n, float(b.ravel()[0]), np.float32)
    if b.size == n and (b.ndim <= 1 or b.shape[channel_axis] == n):
        return b.reshape(n).copy()
    raise UnsupportedError(f"ONNX {node.op_type}: bias of shape {tuple(b.shape)} does not broadcast as one value "
                           f"per output ({n})", file=file, node=node.name)


def _fold(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate a node whose inputs are all constants (onnx's reference evaluator); {} when it cannot."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "Constant":
        return {}
    try:
        ins = [onnx.helper.make_tensor_value_info(i, onnx.TensorProto.UNDEFINED, None) for i in node.input if i]
        outs = [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output]
        m = onnx.helper.make_model(onnx.helper.make_graph([node], "fold", ins, outs))
        res = ReferenceEvaluator(m).run(None, {i: consts[i] for i in node.input if i})
    except Exception:  # a node the evaluator cannot run stays unfolded; its consumer names it if it matters
        return {}
    return {o: np.asarray(r) for o, r in zip(node.output, res) if o}


def _fold_input_affine(op: C.Op, pre: tuple[np.ndarray, np.ndarray] | None, node: onnx.NodeProto,
                       file: str | None) -> None:
    """Fold a per-input-channel y = scale x + shift (a BatchNormalization before this layer) into its weights."""
    if pre is None:
        return
    scale, shift = pre
    w = np.asarray(op.params["w"], np.float64)
    if w.shape[1] != scale.size:
        raise UnsupportedError(f"ONNX BatchNormalization over {scale.size} channels feeds a layer with "
                               f"{w.shape[1]} inputs", file=file, node=node.name)
    if op.kind != "linear" and any(op.params.get("padding", ())):
        raise UnsupportedError("ONNX BatchNormalization before a padded Conv cannot be folded exactly "
                               "(the padding is not shifted)", file=file, node=node.name)
    bshape = (1, -1) + (1,) * (w.ndim - 2)
    op.params["b"] = (np.asarray(op.params["b"], np.float64)
                      + (w * shift.reshape(bshape)).reshape(w.shape[0], -1).sum(1)).astype(np.float32)
    op.params["w"] = (w * scale.reshape(bshape)).astype(np.float32)
    op.source += "+BatchNormalization(folded, before)"


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
    affine: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # value -> per-channel (scale, shift) still to fold
    # channels-last values (tf2onnx's Transpose(0, 2, 3, 1) before Keras' Flatten): value -> (H, W, C) of the
    # NHWC view of an NCHW tensor; a flatten of one yields features in (H, W, C) order, which the next Gemm/MatMul
    # takes back by permuting its weight columns (exact)
    nhwc: dict[str, tuple[int, int, int]] = {}
    hwc_flat: dict[str, tuple[int, int, int]] = {}
    in_shape_override: list[tuple[int, ...]] = []
    symshape: dict[str, list[int | None]] = {}  # 1-D shape vectors computed from Shape(data); None = batch
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
        if not data_in:  # constants only (an Identity around an initializer, a transposed weight): fold them
            if all(i in consts for i in n.input if i):
                consts.update(_fold(n, consts))
            elif any(i in symshape for i in n.input):  # shape arithmetic on a Shape of the data (tf2onnx's
                v = _shape_arith(n, a, symshape, consts)  # Flatten spells (batch, -1) this way)
                if v is not None:
                    symshape[n.output[0]] = v
            continue
        pending = [i for i in data_in if i in affine]
        if pending and t not in ("Gemm", "MatMul", "Conv"):
            raise UnsupportedError(f"ONNX BatchNormalization before {t}: a BatchNormalization is folded into the "
                                   f"Gemm/MatMul/Conv before or after it", file=file, node=n.name or t)
        if t in SHAPE_OPS and t != "Reshape":
            if t == "Shape":
                shp = shapes.get(n.input[0])
                if shp is not None and len(shp) >= 1 and "start" not in a and "end" not in a:
                    symshape[n.output[0]] = [None] + [int(d) if d else None for d in shp[1:]]
                continue
            raise UnsupportedError(f"ONNX op {t} on the data path is not supported; supported: "
                                   f"{', '.join(SUPPORTED)}", file=file, node=n.name or t)
        src = value[data_in[0]]  # the data operand, wherever it stands (`Add(bias, x)` puts the constant first)
        out = n.output[0]
        layout = [i for i in data_in if i in nhwc or i in hwc_flat]
        if layout and not (t in ("Flatten", "Reshape") and data_in[0] in nhwc) and \
                not (t in ("Gemm", "MatMul") and data_in[0] in hwc_flat) and t not in ("Identity", "Dropout"):
            raise UnsupportedError(f"ONNX {t} on a channels-last (NHWC) tensor; a Transpose to NHWC is supported "
                                   "only before a Flatten/Reshape that feeds a Gemm/MatMul (Keras' Flatten -> "
                                   "Dense)", file=file, node=n.name or t)
        pre = affine.get(data_in[0])  # a BatchNormalization after a ReLU, folded into this layer's input side
        if t in ("Identity", "Dropout"):
            value[out] = src
            for table in (nhwc, hwc_flat):
                if data_in[0] in table:
                    table[out] = table[data_in[0]]
        elif t == "Transpose":
            perm = tuple(int(p) for p in a.get("perm", ()))
            shp = shapes.get(n.input[0])
            if perm == (0, 2, 3, 1) and shp is not None and len(shp) == 4 and all(d for d in shp[1:]):
                nhwc[out] = (int(shp[2]), int(shp[3]), int(shp[1]))
                value[out] = src
            elif src == "input" and perm == (0, 3, 1, 2):
                raise UnsupportedError("ONNX Transpose of a channels-last (NHWC) graph input with more than one "
                                       "channel: spikeforge's inputs are channels-first; export with tf2onnx's "
                                       "--inputs-as-nchw (Python: inputs_as_nchw=[name]) so the file takes NCHW",
                                       file=file, node=n.name or t)
            else:
                raise UnsupportedError(f"ONNX Transpose with perm {list(perm)} on the data path (supported: the "
                                       "NHWC transpose before a Flatten -> Gemm/MatMul)", file=file,
                                       node=n.name or t)
        elif t == "Gemm":
            if a.get("transA", 0):
                raise UnsupportedError("ONNX Gemm with transA=1", file=file, node=n.name)
            w = const(n.input[1], n).astype(np.float32)
            w = w if a.get("transB", 0) else w.T
            w = w * float(a.get("alpha", 1.0))
            b = const(n.input[2], n).astype(np.float32) * float(a.get("beta", 1.0)) if len(n.input) > 2 and \
                n.input[2] else np.zeros(w.shape[0], np.float32)
            w = _from_hwc(w, hwc_flat.get(data_in[0]), n, file)
            name = fresh(n)
            ops[name] = C.Op(name, "linear", [src], {"w": w, "b": _bias(b, w.shape[0], n, file)}, source="onnx.Gemm")
            _fold_input_affine(ops[name], pre, n, file)
            value[out] = name
        elif t == "MatMul":
            w = const(n.input[1], n).astype(np.float32)
            if w.ndim != 2:
                raise UnsupportedError(f"ONNX MatMul with a {w.ndim}-D weight", file=file, node=n.name)
            name = fresh(n)
            wt = _from_hwc(w.T.copy(), hwc_flat.get(data_in[0]), n, file)
            ops[name] = C.Op(name, "linear", [src], {"w": wt, "b": np.zeros(w.shape[1], np.float32)},
                             source="onnx.MatMul")
            _fold_input_affine(ops[name], pre, n, file)
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
                c = _bias(const(other, n).astype(np.float32), prev.params["b"].shape[0], n, file,
                          channel_axis=1 if prev.kind != "linear" else -1)
                prev.params["b"] = (prev.params["b"] + c).astype(np.float32)
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
            _fold_input_affine(ops[name], pre, n, file)
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
                sym = symshape.get(n.input[1])
                ok = (shp is not None and len(shp) == 2) or (tgt is not None and tgt.size == 2) or \
                    (sym is not None and len(sym) == 2 and sym[0] in (None, 0)
                     and sym[1] in (-1, _per_sample(shapes.get(data_in[0]))))
                if not ok and src == "input" and uses.get(data_in[0], 0) == 1 and not in_shape_override:
                    # a Reshape of the graph input never reorders memory: the network sees the same
                    # numbers under another shape (tf2onnx writes (N, 8, 8, 1) -> (N, 1, 8, 8) for a
                    # one-channel Keras input), so the NIR input takes the reshaped shape
                    view = _input_view(tgt, shp, in_shape)
                    if view is not None:
                        in_shape_override.append(view)
                        value[out] = src
                        continue
                if not ok:
                    raise UnsupportedError("ONNX Reshape is not a flatten to (batch, -1)", file=file,
                                           node=n.name)
            name = fresh(n)
            ops[name] = C.Op(name, "flatten", [src], source=f"onnx.{t}")
            value[out] = name
            if data_in[0] in nhwc:
                hwc_flat[out] = nhwc[data_in[0]]
        elif t == "BatchNormalization":
            prev = ops[src]
            gamma, beta, mean, var = (const(i, n).astype(np.float64) for i in n.input[1:5])
            eps = float(a.get("epsilon", 1e-5))
            if prev.kind in ("linear", "conv1d", "conv2d") and uses.get(n.input[0], 0) == 1:
                C.fold_batchnorm(prev, gamma, beta, mean, var, eps)
                prev.source += "+BatchNormalization(folded)"
            else:  # after a ReLU (Linear-ReLU-BN-Linear): folded into the next layer's weights
                scale = gamma / np.sqrt(var + eps)
                affine[out] = (scale, beta - mean * scale)
            value[out] = src
        else:
            raise UnsupportedError(f"ONNX op {t} is not supported for conversion to a spiking network; "
                                   f"supported: {', '.join(SUPPORTED)}", file=file, node=n.name or t)
    out_name = g.output[0].name
    if out_name not in value:
        raise UnsupportedError(f"graph output '{out_name}' is not computed from the input", file=file)
    if out_name in nhwc or out_name in hwc_flat:
        raise UnsupportedError("the graph output is a channels-last (NHWC) tensor", file=file)
    shape = in_shape_override[0] if in_shape_override else tuple(int(d) for d in in_shape)
    return C.AnnGraph(ops=ops, output=value[out_name], input_shape=shape, source="onnx")


def _shape_arith(node: onnx.NodeProto, a: dict[str, Any], sym: dict[str, list[int | None]],
                 consts: dict[str, np.ndarray]) -> list[int | None] | None:
    """Evaluate 1-D shape arithmetic (Gather, Slice, Cast, Concat, Unsqueeze, Squeeze) on shape vectors
    whose batch entry is unknown (None); None when the node is anything else."""
    def vec(name: str) -> list[int | None] | None:
        if name in sym:
            return list(sym[name])
        if name in consts and np.asarray(consts[name]).ndim <= 1:
            return [int(v) for v in np.asarray(consts[name]).ravel()]
        return None

    t, ins = node.op_type, [vec(i) if i else None for i in node.input]
    if ins[0] is None:
        return None
    if t in ("Cast", "Identity", "Unsqueeze", "Squeeze"):
        return ins[0]
    if t == "Gather" and len(ins) > 1 and ins[1] is not None and int(a.get("axis", 0)) == 0:
        return [ins[0][i] for i in ins[1]] if all(-len(ins[0]) <= i < len(ins[0]) for i in ins[1]) else None
    if t == "Slice" and len(ins) >= 3 and ins[1] is not None and ins[2] is not None and len(ins[1]) == 1:
        if len(ins) > 3 and ins[3] not in (None, [0]):
            return None
        step = ins[4][0] if len(ins) > 4 and ins[4] else 1
        return ins[0][slice(ins[1][0], ins[2][0], step)] if step else None
    if t == "Concat" and int(a.get("axis", 0)) == 0 and all(v is not None for v in ins):
        return [d for v in ins for d in v]
    return None


def _per_sample(shape: list[int | None] | None) -> int | None:
    """Elements per sample of a (batch, ...) shape, None when a dimension is unknown."""
    if not shape or any(not d for d in shape[1:]):
        return None
    return int(np.prod([int(d) for d in shape[1:]]))


def _input_view(target: np.ndarray | None, inferred: list[int | None] | None,
                in_shape: list[int | None]) -> tuple[int, ...] | None:
    """The per-sample shape a Reshape of the graph input gives, when it keeps the batch axis and the size."""
    size = int(np.prod([int(d) for d in in_shape]))
    dims = [int(d) for d in target.ravel()[1:]] if target is not None and target.size >= 2 else None
    if dims is None and inferred is not None and all(d for d in inferred[1:]):
        dims = [int(d) for d in inferred[1:]]
    if not dims or any(d <= 0 for d in dims) or int(np.prod(dims)) != size:
        return None
    return tuple(dims)


def _from_hwc(w: np.ndarray, chw: tuple[int, int, int] | None, node: onnx.NodeProto, file: str | None) -> np.ndarray:
    """Weights (out, H*W*C) that read a channels-last flatten -> the same weights for a channels-first one."""
    if chw is None:
        return w
    hh, ww, cc = chw
    if w.shape[1] != hh * ww * cc:
        raise UnsupportedError(f"ONNX {node.op_type} after an NHWC flatten has {w.shape[1]} inputs, expected "
                               f"{hh * ww * cc}", file=file, node=node.name)
    return np.ascontiguousarray(w.reshape(w.shape[0], hh, ww, cc).transpose(0, 3, 1, 2).reshape(w.shape[0], -1))


def onnxruntime_check(model: Any, x: np.ndarray, ann: C.AnnGraph | None = None) -> float:
    """Largest |onnxruntime - parsed ANN| over the batch x: the parse is exact when this is ~1e-6."""
    import onnxruntime as ort

    m, _ = _load(model)
    ann = ann or parse_onnx(m)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.asarray(x, np.float32)
    if isinstance(inp.shape[0], int) and inp.shape[0] != len(x):  # exported with a fixed batch size b
        b = max(int(inp.shape[0]), 1)
        pad = np.concatenate([x, np.repeat(x[-1:], (-len(x)) % b, axis=0)])
        ref = np.concatenate([sess.run(None, {inp.name: pad[i:i + b]})[0] for i in range(0, len(pad), b)])[:len(x)]
    else:
        ref = sess.run(None, {inp.name: x})[0]
    ours = C.evaluate(ann, x.reshape(len(x), *ann.input_shape))[ann.output]  # a Reshape of the input is a view
    return float(np.max(np.abs(ref.reshape(ours.shape) - ours)))


def from_onnx(path_or_model: Any, calibration: Any = None, timesteps: int = 100, percentile: float = 99.9,
              dt: float = 1e-3, reset: str = "subtract") -> nir.NIRGraph:
    """ONNX ReLU network -> IF-neuron NIR graph normalised on the calibration data."""
    ann = parse_onnx(path_or_model)
    graph = C.to_snn(ann, calibration, timesteps=timesteps, percentile=percentile, dt=dt, reset=reset)
    graph.metadata["spikeforge.frontend"] = "onnx"
    return graph


@register(".onnx")
def load_onnx(path: str | os.PathLike, *, calibration: Any = None, timesteps: int | None = None,
              percentile: float | None = None, dt: float | None = None, reset: str | None = None,
              **_: Any) -> nir.NIRGraph:
    if calibration is None:
        raise InputError("converting an ONNX ANN needs calibration data (--calibration inputs.npz)", file=str(path))
    try:
        return from_onnx(path, calibration, timesteps=int(timesteps or 100), percentile=float(percentile or 99.9),
                         dt=float(dt or 1e-3), reset=reset or "subtract")
    except SpikeforgeError as exc:
        raise type(exc)(exc.reason, file=exc.file or str(path), node=exc.node, field=exc.field,
                        hint=exc.hint) from None
