"""TorchScript frontend: a scripted or traced ReLU network -> layer graph -> IF-neuron SNN (convert.py).

The module's inlined TorchScript IR (`module.inlined_graph`) is walked node by node with a sample input.
Every value is either a constant (parameters read through `prim::GetAttr`, `prim::Constant`, lists, and
anything computed only from those, e.g. `aten::t` of a weight or a shape check) or a tensor on the data
path. Constants are folded by running the ATen op itself; shape queries (`aten::size`, `aten::dim`) are
answered from the sample, so the shape checks of scripted modules (`if input.dim() != 4: raise`) take the
branch they take at run time. Data-path ops map to the same layer graph as the torch.fx and ONNX paths:

  aten::linear, aten::matmul / aten::mm (+ aten::add of a constant bias), aten::addmm, aten::_convolution /
  conv1d / conv2d, aten::batch_norm (folded into the preceding linear/conv), aten::relu, aten::relu6 /
  hardtanh(0, x) / clamp(0, x) (upper clip recorded, ignored by the SNN), aten::avg_pool2d,
  aten::adaptive_avg_pool2d(1), aten::flatten / view / reshape (to (batch, -1) only), aten::add of two
  branches, aten::dropout / contiguous / clone / detach (dropped).

Anything else on the data path (aten::max_pool2d, aten::lstm, control flow that depends on data values,
...) raises one `UnsupportedError` naming the op, the IR value and the source line. The parsed layer graph
is then run against the module itself and must reproduce its output.

Loading a TorchScript file means `torch.jit.load`, which PyTorch documents as unsafe for untrusted files
(see `frontends/torch.py:load_torch`): it is only done with `trust=True`.
"""

from __future__ import annotations

import operator
import re
import warnings
from typing import Any

import nir
import numpy as np
import torch

from spikeforge.errors import InputError, SpikeforgeError, UnsupportedError
from spikeforge.frontends import convert as C

SUPPORTED = ("linear", "matmul/mm(+add)", "addmm", "_convolution/conv1d/conv2d", "batch_norm (folded)", "relu",
             "relu6/hardtanh(0,x)/clamp(0,x)", "avg_pool2d", "adaptive_avg_pool2d(1)",
             "flatten/view/reshape (to (batch, -1))", "add of two branches", "dropout")
_ALIAS = {"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "contiguous", "clone", "detach"}
_SHAPE = {"size", "dim", "numel", "len"}


class _Data:
    """A tensor on the data path: the layer-graph op that produces it and its value on the sample."""

    __slots__ = ("op", "t")

    def __init__(self, op: str, t: torch.Tensor) -> None:
        self.op, self.t = op, t


_UNUSABLE = object()


def _has_data(v: Any) -> bool:
    if isinstance(v, _Data):
        return True
    return isinstance(v, (list, tuple)) and any(_has_data(a) for a in v)


def _concrete(v: Any) -> Any:
    if isinstance(v, _Data):
        return v.t
    if isinstance(v, (list, tuple)):
        return type(v)(_concrete(a) for a in v)
    return v


def _where(n: torch._C.Node) -> str:
    """'%out = aten::op' plus the source line (file:line) the IR records, for messages."""
    outs = [o.debugName() for o in n.outputs()]
    head = f"%{outs[0]} = {n.kind()}" if outs else n.kind()
    m = re.search(r"# (\S+?):(\d+):\d+\s*$", str(n).splitlines()[0])
    scope = n.scopeName()
    loc = f" at {m.group(1).rsplit('/', 1)[-1]}:{m.group(2)}" if m else ""
    return head + (f" in {scope.replace('__module.', 'module ')}" if scope else "") + loc


def _data_uses(v: torch._C.Value) -> int:
    """Uses of a value other than shape queries (a scripted BatchNorm checks `input.dim()` first)."""
    return sum(u.user.kind().split("::")[-1] not in (*_SHAPE, "shape") for u in v.uses())


def _np(v: Any) -> np.ndarray:
    return (v.detach() if isinstance(v, torch.Tensor) else torch.as_tensor(v)).numpy().astype(np.float32).copy()


_SCALAR = {  # TorchScript's builtins on Python values (shape arithmetic), evaluated in Python
    "len": len, "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "gt": operator.gt, "le": operator.le,
    "ge": operator.ge, "__not__": operator.not_, "__and__": operator.and_, "__or__": operator.or_,
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv,
    "div": operator.truediv, "neg": operator.neg, "__getitem__": operator.getitem, "Int": int, "Float": float,
    "Bool": bool, "list": list, "format": lambda f, *a: str(f).format(*a),
}


def _is_scalar(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return all(_is_scalar(a) for a in v)
    return v is None or isinstance(v, (bool, int, float, str))


def _call_aten(n: torch._C.Node, args: list[Any]) -> Any:
    """Run the node's own ATen operator (overload from its schema) on concrete arguments."""
    kind = n.kind().split("::", 1)[1]
    if kind in _SCALAR and all(_is_scalar(a) for a in args):
        try:
            return _SCALAR[kind](*args)
        except (TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            raise UnsupportedError(f"cannot evaluate TorchScript node {_where(n)}: {exc}") from None
    try:
        schema = torch._C.parse_schema(n.schema())
        fn = getattr(getattr(torch.ops.aten, kind), schema.overload_name or "default")
        pos = [v for a, v in zip(schema.arguments, args) if not a.kwarg_only]
        kw = {a.name: v for a, v in zip(schema.arguments, args) if a.kwarg_only}
        with torch.no_grad():
            out = fn(*pos, **kw)
        return list(out) if isinstance(out, torch.Size) else out
    except (RuntimeError, AttributeError, TypeError) as exc:
        raise UnsupportedError(f"cannot evaluate TorchScript node {_where(n)}: {str(exc).splitlines()[0]}") from None


class _Walker:
    def __init__(self, module: torch.jit.ScriptModule, x: torch.Tensor) -> None:
        self.module = module
        self.x = x
        self.env: dict[int, Any] = {}
        self.ops: dict[str, C.Op] = {}
        self.uses: dict[str, int] = {}  # op name -> number of IR uses of its value
        self.count = 0

    # ------------------------------------------------------------------ helpers
    def val(self, v: torch._C.Value) -> Any:
        return self.env[v.unique()]

    def new_op(self, n: torch._C.Node, kind: str, inputs: list[str], params: dict[str, Any] | None = None,
               source: str = "") -> str:
        self.count += 1
        name = f"{kind}_{self.count}"
        self.ops[name] = C.Op(name, kind, inputs, params or {}, source=source or n.kind())
        self.uses[name] = _data_uses(n.output())
        return name

    def unsupported(self, n: torch._C.Node, why: str) -> UnsupportedError:
        return UnsupportedError(f"TorchScript node {_where(n)}: {why}; supported: {', '.join(SUPPORTED)}")

    # ------------------------------------------------------------------ walk
    def run(self, graph: torch._C.Graph) -> C.AnnGraph:
        ins = list(graph.inputs())
        if len(ins) != 2:
            raise UnsupportedError(f"TorchScript forward takes {len(ins) - 1} inputs; exactly one tensor input "
                                   f"is supported")
        self.env[ins[0].unique()] = self.module
        self.ops["input"] = C.Op("input", "input", [], source="input")
        self.env[ins[1].unique()] = _Data("input", self.x)
        self.block(graph.nodes())
        out = self.val(list(graph.outputs())[0])
        while isinstance(out, (list, tuple)) and out:
            out = out[0]
        if not isinstance(out, _Data) or out.op == "input":
            raise UnsupportedError("the TorchScript module's output is not computed from its input")
        return self._pruned(out.op)

    def _pruned(self, output: str) -> C.AnnGraph:
        keep, todo = set(), [output]
        while todo:
            k = todo.pop()
            if k not in keep:
                keep.add(k)
                todo.extend(self.ops[k].inputs)
        ops = {k: v for k, v in self.ops.items() if k in keep or k == "input"}
        return C.AnnGraph(ops=ops, output=output, input_shape=tuple(self.x.shape[1:]), source="torchscript")

    def block(self, nodes: Any) -> None:
        for n in nodes:
            try:
                self.node(n)
            except SpikeforgeError:
                raise
            except Exception as exc:  # an IR construct this walker does not model: one clear line, not a trace
                msg = str(exc).splitlines()[0] if str(exc) else ""
                raise self.unsupported(n, f"cannot interpret it ({type(exc).__name__}: {msg})") from None

    def node(self, n: torch._C.Node) -> None:
        kind = n.kind()
        outs = list(n.outputs())
        if kind == "prim::Constant":
            try:
                self.env[outs[0].unique()] = outs[0].toIValue()
            except RuntimeError:  # e.g. a Function constant: an error only where it is used
                self.env[outs[0].unique()] = _UNUSABLE
            return
        args = [self.val(i) for i in n.inputs()]
        if any(a is _UNUSABLE for a in args):
            raise self.unsupported(n, "an argument is a TorchScript constant that cannot be read")
        if kind == "prim::GetAttr":
            obj = getattr(args[0], n.s("name"))
            self.env[outs[0].unique()] = obj.detach() if isinstance(obj, torch.Tensor) else obj
        elif kind in ("prim::ListConstruct", "prim::TupleConstruct"):
            self.env[outs[0].unique()] = list(args) if kind == "prim::ListConstruct" else tuple(args)
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            for o, a in zip(outs, args[0]):
                self.env[o.unique()] = a
        elif kind == "prim::TupleIndex":
            self.env[outs[0].unique()] = args[0][int(args[1])]
        elif kind in ("prim::unchecked_cast", "aten::__getitem__") and not _has_data(args[1:]):
            self.env[outs[0].unique()] = args[0] if kind == "prim::unchecked_cast" else args[0][args[1]]
        elif kind in ("aten::__is__", "aten::__isnot__"):
            same = args[0] is args[1]  # identity, as TorchScript: used for `x is None` on optional attributes
            self.env[outs[0].unique()] = same if kind == "aten::__is__" else not same
        elif kind == "prim::NumToTensor":
            self.env[outs[0].unique()] = torch.tensor(args[0])
        elif kind == "prim::If":
            cond = args[0]
            if _has_data(cond) or not isinstance(cond, (bool, int)):
                raise self.unsupported(n, "control flow that depends on the data (only shape checks and "
                                          "constant conditions can be resolved)")
            blk = list(n.blocks())[0 if cond else 1]
            self.block(blk.nodes())
            for o, r in zip(outs, blk.outputs()):
                self.env[o.unique()] = self.val(r)
        elif kind == "prim::RaiseException":
            raise InputError(f"the TorchScript module rejects the input of shape {tuple(self.x.shape)}: "
                             f"{args[0]}")
        elif kind in ("prim::dtype", "prim::device", "prim::layout", "prim::shape") and isinstance(args[0], _Data):
            t = args[0].t
            self.env[outs[0].unique()] = {"prim::dtype": t.dtype, "prim::device": t.device,
                                          "prim::layout": t.layout, "prim::shape": list(t.shape)}[kind]
        elif kind.startswith("aten::") and kind.split("::")[1] in _SHAPE and _has_data(args):
            for o, r in zip(outs, [_call_aten(n, _concrete(args))]):
                self.env[o.unique()] = r
        elif kind.startswith("aten::") and not _has_data(args):
            res = _call_aten(n, args)  # constant folding: weights, shape arithmetic, checks
            self._assign(outs, res)
        elif kind.startswith("aten::"):
            self.data_op(n, kind.split("::")[1].rstrip("_"), args)
        else:
            raise self.unsupported(n, f"{kind} is not supported")

    def _assign(self, outs: list[torch._C.Value], res: Any) -> None:
        if len(outs) == 1:
            self.env[outs[0].unique()] = res
        else:
            for o, r in zip(outs, res):
                self.env[o.unique()] = r

    # ------------------------------------------------------------------ data path
    def data_op(self, n: torch._C.Node, op: str, args: list[Any]) -> None:
        out_t = _call_aten(n, _concrete(args))
        outs = list(n.outputs())
        if op in ("max_pool1d", "max_pool2d", "max_pool2d_with_indices", "adaptive_max_pool2d"):
            raise self.unsupported(n, "max pooling has no exact rate-coded spiking equivalent (replace it with "
                                      "AvgPool2d or a strided convolution and retrain)")
        if op in ("softmax", "log_softmax"):
            raise self.unsupported(n, f"aten::{op}: drop the final {op} before exporting (the predicted class, "
                                      f"the argmax, is unchanged)")
        if len(outs) != 1:
            raise self.unsupported(n, f"aten::{op} with {len(outs)} outputs")
        x = args[0]
        if not isinstance(x, _Data) and op not in ("addmm", "add"):
            raise self.unsupported(n, f"aten::{op} with the data as a non-first argument")
        if isinstance(x, _Data) and any(_has_data(a) for a in args[1:]) and op != "add":
            raise self.unsupported(n, f"aten::{op} of two data tensors")
        name: str | None = None
        if op in _ALIAS:
            if "dropout" in op and len(args) > 2 and args[2] is True:
                raise self.unsupported(n, f"aten::{op} in training mode (a module traced before model.eval())")
            name = x.op
        elif op == "linear":
            w = _np(args[1])
            b = _np(args[2]) if args[2] is not None else np.zeros(w.shape[0], np.float32)
            name = self.new_op(n, "linear", [x.op], {"w": w, "b": b})
        elif op in ("matmul", "mm"):
            if not isinstance(args[1], torch.Tensor) or args[1].dim() != 2 or x.t.dim() != 2:
                raise self.unsupported(n, f"aten::{op} is supported only as (batch, in) @ constant (in, out)")
            w = _np(args[1]).T.copy()
            name = self.new_op(n, "linear", [x.op], {"w": w, "b": np.zeros(w.shape[0], np.float32)})
        elif op == "addmm":
            b, h, w = args[0], args[1], args[2]
            if not isinstance(h, _Data) or _has_data([b, w]):
                raise self.unsupported(n, "aten::addmm is supported only as bias + data @ constant weight")
            beta, alpha = float(args[3]) if len(args) > 3 else 1.0, float(args[4]) if len(args) > 4 else 1.0
            wt = (_np(w) * alpha).T.copy()
            bias = np.broadcast_to(_np(b) * beta, (wt.shape[0],)).astype(np.float32).copy()
            name = self.new_op(n, "linear", [h.op], {"w": wt, "b": bias})
        elif op in ("add", "sub"):
            name = self._add(n, op, args, out_t)
        elif op in ("_convolution", "conv1d", "conv2d"):
            name = self._conv(n, op, x, args)
        elif op == "batch_norm":
            prev = self.ops.get(x.op)
            if prev is None or prev.kind not in ("linear", "conv1d", "conv2d") or self.uses.get(x.op, 0) > 1:
                raise self.unsupported(n, "batch_norm must directly follow a linear/conv layer to be folded")
            if bool(args[5]):
                raise self.unsupported(n, "batch_norm in training mode (call model.eval() before "
                                          "scripting/tracing)")
            w, b = args[1], args[2]
            C.fold_batchnorm(prev, _np(w) if w is not None else 1.0, _np(b) if b is not None else 0.0,
                             _np(args[3]), _np(args[4]), float(args[7]))
            prev.source += "+aten::batch_norm(folded)"
            self.uses[prev.name] = _data_uses(n.output())
            name = prev.name
        elif op == "relu":
            name = self.new_op(n, "relu", [x.op], {"clip": None})
        elif op in ("relu6", "hardtanh", "clamp", "clamp_min"):
            lo = 0.0 if op == "relu6" else args[1]
            hi = 6.0 if op == "relu6" else (args[2] if op in ("hardtanh", "clamp") else None)
            if lo is None or float(lo) != 0.0:
                raise self.unsupported(n, f"aten::{op} with lower bound {lo}; only 0 (a ReLU) maps to IF neurons")
            name = self.new_op(n, "relu", [x.op], {"clip": None if hi is None else float(hi)})
        elif op == "avg_pool2d":
            k = tuple(int(a) for a in args[1])
            if (len(args) > 4 and args[4]) or (len(args) > 5 and not args[5]) or (len(args) > 6 and args[6]):
                raise self.unsupported(n, "avg_pool2d with ceil_mode, count_include_pad=False or divisor_override")
            stride = tuple(int(a) for a in (args[2] or k))
            name = self.new_op(n, "avgpool", [x.op], {"kernel": k, "stride": stride,
                                                      "padding": tuple(int(a) for a in args[3])})
        elif op == "adaptive_avg_pool2d":
            if tuple(int(a) for a in args[1]) != (1, 1):
                raise self.unsupported(n, f"adaptive_avg_pool2d to {list(args[1])}; only (1, 1) (global pooling)")
            hw = tuple(int(s) for s in x.t.shape[2:])
            name = self.new_op(n, "avgpool", [x.op], {"kernel": hw, "stride": hw, "padding": (0, 0)})
        elif op in ("flatten", "view", "reshape", "_unsafe_view"):
            if out_t.dim() != 2 or out_t.shape[0] != x.t.shape[0]:
                raise self.unsupported(n, f"aten::{op} from {tuple(x.t.shape)} to {tuple(out_t.shape)} is not a "
                                          f"flatten to (batch, -1)")
            name = self.new_op(n, "flatten", [x.op])
        else:
            raise self.unsupported(n, f"aten::{op} is not supported for ANN-to-SNN conversion")
        self.env[outs[0].unique()] = _Data(name, out_t)

    def _add(self, n: torch._C.Node, op: str, args: list[Any], out_t: torch.Tensor) -> str:
        a, b = args[0], args[1]
        alpha = float(args[2]) if len(args) > 2 and args[2] is not None else 1.0
        if isinstance(a, _Data) and isinstance(b, _Data):
            if op != "add" or alpha != 1.0:
                raise self.unsupported(n, f"aten::{op} of two branches with alpha={alpha}; only a plain sum")
            return self.new_op(n, "add", [a.op, b.op])
        data, const = (a, b) if isinstance(a, _Data) else (b, a)
        if not isinstance(data, _Data) or (op == "sub" and data is not a):
            raise self.unsupported(n, f"aten::{op} of a constant and the data")
        prev = self.ops.get(data.op)
        if prev is None or prev.kind not in ("linear", "conv1d", "conv2d") or self.uses.get(data.op, 0) > 1:
            raise self.unsupported(n, f"aten::{op} of a constant is supported only as the bias of a linear/conv "
                                      f"layer")
        c = np.broadcast_to(_np(const) * (alpha if data is a else 1.0), tuple(out_t.shape[1:])).astype(np.float64)
        c = c if op == "add" else -c
        per = c.reshape(c.shape[0], -1)
        if not np.all(per == per[:, :1]):
            raise self.unsupported(n, f"aten::{op} of a constant that is not one value per output channel")
        prev.params["b"] = (np.asarray(prev.params["b"], np.float64) + per[:, 0]).astype(np.float32)
        prev.source += f"+aten::{op}"
        self.uses[prev.name] = _data_uses(n.output())
        return prev.name

    def _conv(self, n: torch._C.Node, op: str, x: _Data, args: list[Any]) -> str:
        w = args[1]
        d = w.dim() - 2
        if d not in (1, 2):
            raise self.unsupported(n, f"{d}-D convolution; 1-D and 2-D are supported")
        if op == "_convolution":
            stride, padding, dilation, transposed, groups = args[3], args[4], args[5], args[6], args[8]
            if transposed:
                raise self.unsupported(n, "transposed convolution")
        else:
            stride, padding, dilation, groups = args[3], args[4], args[5], args[6]
        if isinstance(padding, str):
            if padding != "valid":
                raise self.unsupported(n, f"convolution with padding={padding!r}; numeric padding only")
            padding = [0] * d
        tup = lambda v: tuple(int(a) for a in (v if isinstance(v, (list, tuple)) else [v] * d))  # noqa: E731
        b = _np(args[2]) if args[2] is not None else np.zeros(w.shape[0], np.float32)
        return self.new_op(n, f"conv{d}d", [x.op], {"w": _np(w), "b": b, "stride": tup(stride),
                                                     "padding": tup(padding), "dilation": tup(dilation),
                                                     "groups": int(groups)})


def parse_torchscript(module: torch.jit.ScriptModule, sample: Any) -> C.AnnGraph:
    """Walk a scripted/traced module's TorchScript IR into the converter's layer graph, checked against the
    module's own output."""
    from spikeforge.frontends.torch import _sample

    if not isinstance(module, torch.jit.ScriptModule):
        raise InputError(f"expected a TorchScript module, got {type(module).__name__}")
    module = module.eval()
    x = _sample(sample)
    ann = _Walker(module, x).run(module.inlined_graph)
    probe = torch.rand(tuple(x.shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = module(probe)
    while isinstance(ref, (tuple, list)):
        ref = ref[0]
    ref = ref.detach().numpy()
    ours = C.evaluate(ann, probe.numpy())[ann.output]
    if ours.shape != ref.shape:
        raise UnsupportedError(f"the layer graph parsed from the TorchScript IR gives shape {ours.shape}, the "
                               f"module {ref.shape}")
    if not np.allclose(ours, ref, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(ref).max())):
        raise UnsupportedError("the layer graph parsed from the TorchScript IR does not reproduce the module's "
                               f"output (max difference {np.abs(ours - ref).max():.3g})")
    return ann


def from_torchscript(module: torch.jit.ScriptModule, sample: Any = None, calibration: Any = None,
                     timesteps: int = 100, percentile: float = 99.9, dt: float = 1e-3,
                     reset: str = "subtract") -> nir.NIRGraph:
    """Scripted or traced ReLU network -> IF-neuron SNN (conversion rules: frontends/convert.py)."""
    calib = C._calibration_array(calibration, None if sample is None else tuple(np.shape(sample)[1:]))
    if sample is None:
        sample = calib[:1]
    ann = parse_torchscript(module, sample)
    g = C.to_snn(ann, calib, timesteps=timesteps, percentile=percentile, dt=dt, reset=reset)
    g.metadata["spikeforge.frontend"] = "torchscript"
    return g


def load_torchscript_file(path: str, **options: Any) -> nir.NIRGraph:
    """torch.jit.load (only reached with trust=True) and convert."""
    calib = options.get("calibration")
    if calib is None:
        raise InputError("a TorchScript ANN needs calibration data for conversion (--calibration inputs.npz)",
                         file=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit
            module = torch.jit.load(path, map_location="cpu")
    except Exception as exc:
        raise SpikeforgeError(f"not a loadable TorchScript archive ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})", file=path) from None
    return from_torchscript(module, None, calib, timesteps=int(options.get("timesteps") or 100),
                            percentile=float(options.get("percentile") or 99.9), dt=options.get("dt") or 1e-3,
                            reset=options.get("reset") or "subtract")
