"""PyTorch frontend: snnTorch and Norse SNNs through their own NIR exporters, plain nn.Module ANNs through
torch.fx and ANN-to-SNN conversion (`spikeforge.frontends.convert`).

Files (`load_model`): a state_dict (`.pt`/`.pth`, read with `weights_only=True`) together with
`model_class="module:Class"`; only with `trust=True` (PyTorch documents all three loaders as unsafe for
untrusted files): a `.pt2` torch.export program (`torch.export.load` falls back to a full unpickle), a
TorchScript archive (`.ts`, `.jit`, or a `.pt` that is one; converted by walking its IR,
`frontends/torchscript.py`), or a fully pickled module.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from spikeforge import graph as G
from spikeforge.errors import InputError, SpikeforgeError, UnsupportedError
from spikeforge.frontends import convert as C
from spikeforge.frontends import register
from spikeforge.frontends.normalise import normalise

SNNTORCH_DT = 1e-4  # what snnTorch's exporter assumes


def _sample(sample: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(sample, dtype=np.float32)) if not isinstance(sample, torch.Tensor) else sample
    if t.dim() < 2:
        raise InputError(f"sample input must be batched (B, ...), got shape {tuple(t.shape)}")
    return t[:1].float()


def _framework(module: torch.nn.Module) -> str:
    names = {type(m).__module__.split(".")[0] for m in module.modules()}
    if "snntorch" in names:
        return "snntorch"
    if "norse" in names:
        return "norse"
    return "torch"


def from_snntorch(module: torch.nn.Module, sample: Any, dt: float = SNNTORCH_DT) -> nir.NIRGraph:
    """snnTorch model -> NIR via snnTorch's exporter, normalised (see frontends/normalise.py)."""
    import nirtorch
    import snntorch as snn

    x = _sample(sample)
    _reset_snntorch_state(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # export_to_nir = this extraction + nir's infer_types, which rejects the scalar beta/threshold the
        # exporter writes (nir 1.0.8); shapes are inferred in normalise() instead.
        graph = nirtorch.extract_nir_graph(module, _snntorch_module, x, model_name="snntorch",
                                           ignore_submodules_of=[snn.RLeaky, snn.RSynaptic], ignore_dims=[0])
    _reset_snntorch_state(module)
    graph = _check_mapped(module, graph, "snntorch")
    return G.validate(normalise(graph, module, tuple(x.shape[1:]), float(dt), "snntorch"))


def _snntorch_module(module: torch.nn.Module) -> nir.NIRNode | None:
    """snnTorch's own module mapping; where it fails on a feed-forward neuron (e.g. a per-neuron beta, which
    it turns into mismatched parameter shapes) a placeholder node: normalise() rebuilds neurons anyway."""
    import snntorch as snn
    from snntorch.export_nir import _extract_snntorch_module

    try:
        return _extract_snntorch_module(module)
    except (AssertionError, ValueError) as exc:
        if not isinstance(module, (snn.Leaky, snn.Synaptic)):
            raise UnsupportedError(f"snnTorch exporter failed on {type(module).__name__}: {exc}") from None
        one = np.ones(1, np.float32)
        cls = nir.CubaLIF if isinstance(module, snn.Synaptic) else nir.LIF
        kw = dict(tau_syn=one, tau_mem=one) if cls is nir.CubaLIF else dict(tau=one)
        return cls(**kw, r=one, v_leak=0 * one, v_threshold=one, v_reset=0 * one,
                   metadata={"spikeforge.exporter_error": str(exc)})


def _reset_snntorch_state(module: torch.nn.Module) -> None:
    for m in module.modules():
        if hasattr(m, "reset_mem") and getattr(m, "init_hidden", False):
            m.reset_mem()


def from_norse(module: torch.nn.Module, sample: Any, dt: float | None = None) -> nir.NIRGraph:
    """Norse model -> NIR via Norse's exporter, with the true time constants and Norse's conventions."""
    x = _sample(sample)
    cells = [m for m in module.modules() if hasattr(m, "dt") and hasattr(m, "p")]
    dts = {float(m.dt) for m in cells}
    if dt is None:
        dt = dts.pop() if len(dts) == 1 else 1e-3
    elif dts and dts != {float(dt)}:
        warnings.warn(f"Norse cells run at dt={sorted(dts)}, converting at dt={dt}: spike trains will differ",
                      stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # norse's to_nir = nirtorch.extract_nir_graph with norse's module mapping; we call the same with that
        # mapping first and a fallback for modules it leaves out (Flatten, AvgPool2d, LIFRecurrentCell).
        import nirtorch
        import norse.torch as norse

        graph = nirtorch.extract_nir_graph(module, lambda m: _norse_module(m, float(dt)), x, model_name="norse",
                                           ignore_submodules_of=[norse.LIFRecurrentCell])
    graph = _check_mapped(module, graph, "norse")
    return G.validate(normalise(graph, module, tuple(x.shape[1:]), float(dt), "norse"))


def _norse_module(module: torch.nn.Module, dt: float) -> nir.NIRNode | None:
    """Norse's own exporter mapping, plus what it lacks; neuron parameters are rebuilt in normalise()."""
    import norse.torch as norse
    from norse.torch.utils.export_nir import _extract_norse_module

    if isinstance(module, norse.LIFRecurrentCell):
        w_in = module.input_weights.detach().numpy().copy()
        w_rec = module.recurrent_weights.detach().numpy().copy()
        n = w_rec.shape[0]
        one = np.ones(n, np.float32)
        return nir.NIRGraph(nodes={
            "input": nir.Input(input_type={"input": np.array([w_in.shape[1]])}),
            "w_in": nir.Linear(weight=w_in),
            "lif": nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=0 * one, v_threshold=one, v_reset=0 * one),
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type={"output": np.array([n])}),
        }, edges=[("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
            type_check=False)
    node = _extract_norse_module(module, dt=dt)
    if node is not None:
        return node
    if isinstance(module, torch.nn.Flatten):
        return nir.Flatten(input_type=None, start_dim=max(module.start_dim - 1, 0),
                           end_dim=module.end_dim - 1 if module.end_dim > 0 else module.end_dim)
    if isinstance(module, torch.nn.AvgPool2d) and not module.ceil_mode and module.count_include_pad:
        k = _tup(module.kernel_size, 2)
        return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(_tup(module.stride or k, 2)),
                             padding=np.array(_tup(module.padding, 2)))
    return None


def _check_mapped(module: torch.nn.Module, graph: nir.NIRGraph, framework: str) -> nir.NIRGraph:
    """Exporters leave unknown modules as None nodes (or drop them): bridge Dropout/Identity, name the rest."""
    modules = dict(module.named_modules())
    passthrough = (torch.nn.Dropout, torch.nn.Identity)
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    for name, node in graph.nodes.items():
        if node is not None:
            continue
        if isinstance(modules.get(name), passthrough):
            preds = [s for s, d in edges if d == name]
            succs = [d for s, d in edges if s == name]
            edges = [e for e in edges if name not in e] + [(p, q) for p in preds for q in succs]
            del nodes[name]
            continue
        kind = type(modules[name]).__name__ if name in modules else "?"
        raise UnsupportedError(f"{framework} exporter has no NIR mapping for {kind}", node=name)
    edges = list(dict.fromkeys(edges))  # nirtorch may already bridge a dropped module: no double edges
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}), type_check=False)
    mapped = {n.split(".")[0] for n in G.flatten(graph).nodes}
    for name, child in module.named_children():
        if name in mapped or isinstance(child, (*passthrough, torch.nn.Flatten)):
            continue
        raise UnsupportedError(f"{framework} exporter has no NIR mapping for {type(child).__name__}", node=name)
    return graph


# --------------------------------------------------------------------------- plain ANNs via torch.fx


def _tup(v: Any, n: int) -> tuple[int, ...]:
    return tuple(int(a) for a in (v if isinstance(v, (tuple, list)) else [v] * n))


def parse_torch_ann(module: torch.nn.Module, sample: Any) -> C.AnnGraph:
    """Trace a plain nn.Module with torch.fx into the converter's layer graph (BatchNorm folded,
    Dropout/Identity dropped)."""
    import operator

    import torch.fx as fx
    import torch.nn.functional as F

    nn = torch.nn
    x = _sample(sample)
    if not isinstance(module, fx.GraphModule):
        module = module.eval()
    try:
        gm = module if isinstance(module, fx.GraphModule) else fx.symbolic_trace(module)
    except Exception as exc:
        raise UnsupportedError(f"torch.fx cannot trace {type(module).__name__}: {str(exc).splitlines()[0]}") from None
    mods = dict(gm.named_modules())
    consts: dict[str, Any] = {}
    ops: dict[str, C.Op] = {}
    alias: dict[str, str] = {}
    output = None

    def src(a: Any) -> str:
        if not isinstance(a, fx.Node):
            raise UnsupportedError(f"non-tensor argument {a!r} in the traced graph")
        return alias.get(a.name, a.name)

    for n in gm.graph.nodes:
        name = n.name
        if n.op == "placeholder":
            if ops:
                raise UnsupportedError("models with more than one input are not supported", node=name)
            ops[name] = C.Op(name, "input", [], source="input")
            continue
        if n.op == "output":
            output = src(n.args[0] if not isinstance(n.args[0], (tuple, list)) else n.args[0][0])
            continue
        if n.op == "get_attr":
            obj: Any = gm
            for part in str(n.target).split("."):
                obj = getattr(obj, part)
            consts[name] = obj.detach().numpy().copy() if isinstance(obj, torch.Tensor) else obj
            continue
        target, args = n.target, n.args
        if n.op == "call_module" and str(target).startswith("_guards"):
            continue  # torch.export's input guards
        if n.op == "call_function" and isinstance(target, torch._ops.OpOverload):
            _aten_op(n, ops, alias, consts, src)
            continue
        m = mods.get(target) if n.op == "call_module" else None
        kind = type(m).__name__ if m is not None else getattr(target, "__name__", str(target))
        if isinstance(m, (nn.Dropout, nn.Identity)) or (n.op == "call_function" and target is F.dropout):
            alias[name] = src(args[0])
        elif isinstance(m, nn.Linear):
            b = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_features, np.float32)
            ops[name] = C.Op(name, "linear", [src(args[0])], {"w": m.weight.detach().numpy().copy(), "b": b.copy()},
                             source=f"torch.nn.{kind}")
        elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
            d = 2 if isinstance(m, nn.Conv2d) else 1
            if isinstance(m.padding, str) or m.padding_mode != "zeros":
                raise UnsupportedError(f"{kind} padding={m.padding!r} mode={m.padding_mode!r} not supported "
                                       f"(numeric zero padding only)", node=target)
            b = m.bias.detach().numpy() if m.bias is not None else np.zeros(m.out_channels, np.float32)
            ops[name] = C.Op(name, f"conv{d}d", [src(args[0])], {
                "w": m.weight.detach().numpy().copy(), "b": b.copy(), "stride": _tup(m.stride, d),
                "padding": _tup(m.padding, d), "dilation": _tup(m.dilation, d), "groups": int(m.groups)},
                source=f"torch.nn.{kind}")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            prev = ops.get(src(args[0]))
            if prev is None or prev.kind not in ("linear", "conv1d", "conv2d") or len(
                    [u for u in gm.graph.nodes if any(getattr(a, "name", None) == args[0].name for a in u.args)]) > 1:
                raise UnsupportedError(f"{kind} must directly follow a Linear/Conv layer to be folded", node=target)
            C.fold_batchnorm(prev, m.weight.detach().numpy() if m.weight is not None else 1.0,
                             m.bias.detach().numpy() if m.bias is not None else 0.0,
                             m.running_mean.numpy(), m.running_var.numpy(), float(m.eps))
            prev.source += f"+{kind}(folded)"
            alias[name] = prev.name
        elif isinstance(m, (nn.ReLU, nn.ReLU6)) or (n.op in ("call_function", "call_method")
                                                    and target in (torch.relu, F.relu, "relu")):
            ops[name] = C.Op(name, "relu", [src(args[0])], {"clip": 6.0 if isinstance(m, nn.ReLU6) else None},
                             source=kind)
        elif isinstance(m, nn.AvgPool2d):
            k = _tup(m.kernel_size, 2)
            if m.ceil_mode or not m.count_include_pad or m.divisor_override:
                raise UnsupportedError("AvgPool2d with ceil_mode/count_include_pad=False/divisor_override",
                                       node=target)
            ops[name] = C.Op(name, "avgpool", [src(args[0])], {"kernel": k, "stride": _tup(m.stride or k, 2),
                                                                "padding": _tup(m.padding, 2)}, source=kind)
        elif isinstance(m, nn.AdaptiveAvgPool2d) and _tup(m.output_size, 2) == (1, 1):
            ops[name] = C.Op(name, "avgpool", [src(args[0])], {"global": True}, source=kind)
        elif isinstance(m, nn.Flatten) or (n.op == "call_function" and target is torch.flatten) or (
                n.op == "call_method" and target in ("flatten", "view", "reshape")):
            ops[name] = C.Op(name, "flatten", [src(args[0])], source=kind)
        elif (n.op == "call_function" and target in (operator.add, torch.add)) or (
                n.op == "call_method" and target == "add"):
            if len(args) != 2 or not all(isinstance(a, fx.Node) for a in args):
                raise UnsupportedError("add of a tensor and a constant is not supported", node=name)
            ops[name] = C.Op(name, "add", [src(a) for a in args], source="add")
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)) or target in (F.max_pool2d, torch.max_pool2d):
            raise UnsupportedError(f"{kind}: max pooling has no exact rate-coded spiking equivalent "
                                   f"(replace it with AvgPool2d or a strided convolution and retrain)", node=name)
        else:
            raise UnsupportedError(f"{kind} is not supported for ANN-to-SNN conversion; supported: Linear, Conv1d, "
                                   f"Conv2d, ReLU, ReLU6, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, BatchNorm "
                                   f"(folded), Dropout, add", node=name)
    if output is None:
        raise UnsupportedError("traced graph has no output")
    ann = C.AnnGraph(ops=ops, output=output, input_shape=tuple(x.shape[1:]), source="torch")
    _resolve_global_pools(ann, x)
    # the parse must reproduce the module (a view that is not a flatten, an op read wrongly, ...)
    probe = torch.rand(tuple(x.shape), generator=torch.Generator().manual_seed(0))  # .pt2 may fix batch 1
    with torch.no_grad():
        ref = module(probe)
    ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).detach().numpy()
    try:
        ours = C.evaluate(ann, probe.numpy())[ann.output]
    except RuntimeError:
        ours = np.zeros(0)
    if ours.shape != ref.shape or not np.allclose(ours, ref, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(ref).max())):
        raise UnsupportedError(f"the parsed layer graph does not reproduce {type(module).__name__}'s output "
                               f"(an unsupported reshape or operator); supported: Linear, Conv, ReLU, AvgPool, "
                               f"Flatten, BatchNorm, Dropout, add")
    return ann


def _aten_op(n: Any, ops: dict[str, C.Op], alias: dict[str, str], consts: dict[str, Any], src: Any) -> None:
    """One ATen operator of a torch.export program (`.pt2`) into the layer graph."""
    import operator

    name, args = n.name, list(n.args)
    op = n.target.overloadpacket.__name__ if hasattr(n.target, "overloadpacket") else str(n.target)
    arg = lambda i, d=None: args[i] if len(args) > i else d  # noqa: E731

    def const(i: int) -> Any:
        a = arg(i)
        return None if a is None else consts[a.name]

    if op in ("linear",):
        w = const(1)
        b = const(2) if arg(2) is not None else np.zeros(w.shape[0], np.float32)
        ops[name] = C.Op(name, "linear", [src(args[0])], {"w": w, "b": b}, source="aten.linear")
    elif op in ("conv2d", "conv1d"):
        w = const(1)
        d = 2 if op == "conv2d" else 1
        b = const(2) if arg(2) is not None else np.zeros(w.shape[0], np.float32)
        ops[name] = C.Op(name, f"conv{d}d", [src(args[0])], {
            "w": w, "b": b, "stride": _tup(arg(3, 1), d), "padding": _tup(arg(4, 0), d),
            "dilation": _tup(arg(5, 1), d), "groups": int(arg(6, 1))}, source=f"aten.{op}")
    elif op in ("batch_norm", "_native_batch_norm_legit_no_training"):
        prev = ops.get(src(args[0]))
        if prev is None or prev.kind not in ("linear", "conv1d", "conv2d"):
            raise UnsupportedError("batch norm must directly follow a linear/conv layer to be folded", node=name)
        eps = float(arg(7) if op == "batch_norm" else arg(6))
        gamma = const(1) if arg(1) is not None else 1.0
        beta = const(2) if arg(2) is not None else 0.0
        C.fold_batchnorm(prev, gamma, beta, const(3), const(4), eps)
        prev.source += "+batch_norm(folded)"
        alias[name] = prev.name
    elif op in ("relu", "relu_"):
        ops[name] = C.Op(name, "relu", [src(args[0])], {"clip": None}, source="aten.relu")
    elif op == "hardtanh" and float(arg(1, -1)) == 0.0:
        ops[name] = C.Op(name, "relu", [src(args[0])], {"clip": float(arg(2, 1.0))}, source="aten.hardtanh")
    elif op == "avg_pool2d":
        k = _tup(arg(1), 2)
        if arg(4, False) or not arg(5, True) or arg(6) is not None:
            raise UnsupportedError("avg_pool2d with ceil_mode/count_include_pad=False/divisor_override", node=name)
        ops[name] = C.Op(name, "avgpool", [src(args[0])], {"kernel": k, "stride": _tup(arg(2) or k, 2),
                                                            "padding": _tup(arg(3, 0), 2)}, source="aten.avg_pool2d")
    elif op == "adaptive_avg_pool2d" and _tup(arg(1), 2) == (1, 1):
        ops[name] = C.Op(name, "avgpool", [src(args[0])], {"global": True}, source="aten.adaptive_avg_pool2d")
    elif op in ("flatten", "view", "reshape", "_unsafe_view"):
        ops[name] = C.Op(name, "flatten", [src(args[0])], source=f"aten.{op}")
    elif op in ("dropout", "clone", "detach", "contiguous", "alias") or n.target is operator.getitem:
        alias[name] = src(args[0])
    elif op == "add" and len(args) == 2 and all(hasattr(a, "name") for a in args):
        ops[name] = C.Op(name, "add", [src(a) for a in args], source="aten.add")
    elif op in ("max_pool2d", "max_pool2d_with_indices"):
        raise UnsupportedError("max pooling has no exact rate-coded spiking equivalent (replace it with "
                               "AvgPool2d or a strided convolution and retrain)", node=name)
    else:
        raise UnsupportedError(f"ATen operator {op} is not supported for ANN-to-SNN conversion; supported: linear, "
                               f"conv1d/2d, batch_norm (folded), relu, hardtanh(0, x), avg_pool2d, "
                               f"adaptive_avg_pool2d(1), flatten/view/reshape, dropout, add", node=name)


def _resolve_global_pools(ann: C.AnnGraph, x: torch.Tensor) -> None:
    """Global average pools become plain AvgPool2d once the spatial size is known; flatten views check shape."""
    for op in ann.ops.values():
        if op.kind == "avgpool" and op.params.get("global"):
            acts = C.evaluate(C.AnnGraph(dict(_upto(ann, op.inputs[0])), op.inputs[0], ann.input_shape), x.numpy())
            h, w = acts[op.inputs[0]].shape[2:]
            op.params = {"kernel": (h, w), "stride": (h, w), "padding": (0, 0)}


def _upto(ann: C.AnnGraph, name: str):
    for k, v in ann.ops.items():
        yield k, v
        if k == name:
            return


def from_torch_ann(module: torch.nn.Module, sample: Any = None, calibration: Any = None, timesteps: int = 100,
                   percentile: float = 99.9, dt: float = 1e-3, reset: str = "subtract") -> nir.NIRGraph:
    """Plain ReLU network -> IF-neuron SNN (see frontends/convert.py for the conversion rules)."""
    calib = C._calibration_array(calibration, None if sample is None else tuple(np.shape(sample)[1:]))
    if sample is None:
        sample = calib[:1]
    ann = parse_torch_ann(module, sample)
    g = C.to_snn(ann, calib, timesteps=timesteps, percentile=percentile, dt=dt, reset=reset)
    g.metadata["spikeforge.frontend"] = "torch.ann"
    return g


def from_module(module: torch.nn.Module, sample: Any = None, *, dt: float | None = None, **options: Any,
                ) -> nir.NIRGraph:
    """Dispatch an in-memory module on the framework it is built from (TorchScript modules: their IR)."""
    calib = options.get("calibration")
    if isinstance(module, torch.jit.ScriptModule):
        from spikeforge.frontends.torchscript import from_torchscript

        return from_torchscript(module, sample, calib, timesteps=int(options.get("timesteps") or 100),
                                percentile=float(options.get("percentile") or 99.9), dt=dt or 1e-3,
                                reset=options.get("reset") or "subtract")
    fw = _framework(module)
    shape = options.get("input_shape")
    if sample is None and shape is not None:
        sample = np.zeros((1, *tuple(shape)), np.float32)
    if sample is None and calib is not None:
        sample = C._calibration_array(calib)[:1]
    if sample is None:
        raise InputError("need the model's input shape: pass --input-shape 1,28,28 (per sample, no batch axis) or "
                         "--calibration FILE.npz (Python: input_shape=(...), calibration=...)", field="input_shape")
    if fw == "snntorch":
        return from_snntorch(module, sample, dt=dt or SNNTORCH_DT)
    if fw == "norse":
        return from_norse(module, sample, dt=dt)
    return from_torch_ann(module, sample, calib, timesteps=int(options.get("timesteps") or 100),
                          percentile=float(options.get("percentile") or 99.9), dt=dt or 1e-3,
                          reset=options.get("reset") or "subtract")


# --------------------------------------------------------------------------- files


def _import_class(ref: str) -> type:
    """`module:Class` (a module importable from sys.path or the current directory) or `path/to/file.py:Class`.

    Importing runs the module's code, as `python -c "import module"` would: name your own model code only.
    """
    mod, _, cls = str(ref).rpartition(":")
    if not mod or not cls:
        raise InputError(f"--model-class must be 'module:Class' or 'path/to/file.py:Class', got {ref!r}",
                         field="model_class")
    try:
        if mod.endswith(".py") or os.sep in mod or "/" in mod:
            obj: Any = _import_file(Path(mod))
        else:
            obj = _import_module(mod)
        for part in cls.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, FileNotFoundError) as exc:
        raise InputError(f"cannot import --model-class {ref!r}: {exc}", field="model_class") from None
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        raise InputError(f"--model-class {ref!r} is a {type(obj).__name__}, expected a torch.nn.Module subclass",
                         field="model_class")
    return obj


def _import_module(name: str) -> Any:
    """Import `name`, also from the current directory (where `python -c` would find it, PYTHONPATH or not)."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    finally:
        if added:
            sys.path.remove(cwd)


def _import_file(path: Path) -> Any:
    """Import a .py file by path under a private module name (its own directory first on sys.path)."""
    import importlib.util

    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    name = f"spikeforge_user_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path.remove(str(path.parent))
    return module


def _sniff(p: Path) -> str | None:
    """Why a file cannot be a PyTorch file at all (empty, truncated, random bytes), else None.

    torch.save writes a zip archive (legacy files: a pickle, first byte 0x80); anything else must not be
    reported as 'a pickled Python object ... refused', which sends the user to --trust for a broken file.
    """
    size = p.stat().st_size
    if size == 0:
        return "file is empty"
    with open(p, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        if not zipfile.is_zipfile(p):
            return "file is a truncated or damaged zip archive, not a complete PyTorch file"
        try:
            with zipfile.ZipFile(p) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            return "file is a truncated or damaged zip archive, not a complete PyTorch file"
        if bad is not None:
            return f"zip member {bad!r} is damaged (CRC mismatch)"
        return None
    if head[:1] == b"\x80":
        return None
    return "file is not a PyTorch file (neither a torch.save zip archive nor a pickle)"


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


@register(".pt", ".pth", ".pt2", ".ts", ".jit")
def load_torch(path: str | os.PathLike, *, trust: bool = False, model_class: str | None = None,
               **options: Any) -> nir.NIRGraph:
    """Load a torch file (see module docstring) and convert it."""
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory, expected a PyTorch file", file=str(p))
    broken = _sniff(p)
    if broken is not None:
        raise InputError(broken, file=str(p))
    if p.suffix == ".pt2":
        if not trust:
            raise UnsupportedError(
                "file is a torch.export program; torch.export.load is documented by PyTorch as unsafe for "
                "untrusted files (it falls back to a full unpickle when the safe load fails), so it is refused "
                "(pass trust=True / --trust only for files you made, or export to ONNX, or save a state_dict and "
                "pass --model-class module:Class or path/to/file.py:Class (Python: model_class=...))", file=str(p))
        quiet = logging.root.manager.disable
        logging.disable(logging.WARNING)  # torch.export logs a traceback before raising: one line is ours
        try:
            prog = torch.export.load(str(p))
        except Exception as exc:
            raise SpikeforgeError(f"not a torch.export program (torch.export.load raised {type(exc).__name__}; "
                                  "the archive lacks or damages the export records)", file=str(p)) from None
        finally:
            logging.disable(quiet)
        module = prog.module()
        return _from_graph_module(module, p, **options)
    if _is_torchscript(p):
        if not trust:
            raise UnsupportedError(
                "file is a TorchScript archive; torch.jit.load is documented by PyTorch as unsafe for untrusted "
                "files (a crafted archive can execute code), so it is refused (pass trust=True / --trust only for "
                "files you made, or export to ONNX, or save a state_dict and pass --model-class module:Class or path/to/file.py:Class (Python: model_class=...))",
                file=str(p))
        from spikeforge.frontends.torchscript import load_torchscript_file

        try:
            return load_torchscript_file(str(p), **options)
        except SpikeforgeError as exc:
            raise type(exc)(exc.reason, file=str(p), node=exc.node, field=exc.field, hint=exc.hint) from None
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust:
            raise UnsupportedError(
                "file is a pickled Python object, not a state_dict; unpickling runs arbitrary code, so it is "
                "refused (pass trust=True / --trust only for files you made, or save model.state_dict() and "
                "pass --model-class module:Class or path/to/file.py:Class (Python: model_class=...))", file=str(p)) from None
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise SpikeforgeError(f"cannot read torch file ({type(exc2).__name__})", file=str(p)) from exc
    if isinstance(obj, torch.nn.Module):
        module = obj
    elif isinstance(obj, dict):
        if model_class is None:
            raise InputError("file holds a state_dict; pass --model-class module:Class or path/to/file.py:Class (Python: model_class=...) to build the module",
                             file=str(p))
        cls = _import_class(model_class)
        try:
            module = cls()
        except Exception as exc:  # the user's class: any constructor failure is their input
            raise InputError(f"model_class {model_class!r} cannot be built without arguments "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                             file=str(p), field="--model-class") from None
        try:
            module.load_state_dict(obj)
        except RuntimeError as exc:
            raise InputError(f"state_dict does not fit {model_class}: {str(exc).splitlines()[0]}",
                             file=str(p)) from None
    else:
        raise UnsupportedError(f"torch file holds a {type(obj).__name__}, expected a state_dict or module",
                               file=str(p))
    try:
        return from_module(module.eval(), **options)
    except SpikeforgeError as exc:
        exc.file = exc.file or str(p)
        raise type(exc)(exc.reason, file=str(p), node=exc.node, field=exc.field, hint=exc.hint) from None


def _from_graph_module(module: torch.nn.Module, p: Path, **options: Any) -> nir.NIRGraph:
    """A torch.export program unflattened to a module: converted as a plain ANN."""
    calib = options.get("calibration")
    if calib is None:
        raise InputError("a .pt2 ANN needs calibration data for conversion", file=str(p))
    return from_torch_ann(module, None, calib, timesteps=int(options.get("timesteps") or 100),
                          percentile=float(options.get("percentile") or 99.9), dt=options.get("dt") or 1e-3,
                          reset=options.get("reset") or "subtract")
