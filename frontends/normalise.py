"""Normalise NIR graphs written by peer exporters (snnTorch, Norse) to spikeforge's conventions.

Why: each framework exports its own flavour of NIR. snnTorch hardcodes dt = 1e-4 s and resets by
subtraction one step late; Norse writes tau = dt / tau_inv (off by a factor 1/dt), leaves w_in = 1
although its current jumps by the whole input, and both leave scalar parameters without a shape. The
functions here (1) infer every node's shape from the sample input and broadcast scalar parameters,
(2) recompute neuron parameters from the *module itself* (not from the exporter's arithmetic) for the
chosen dt, and (3) record the reset / reset timing / CUBA order / threshold comparison in the node
metadata read by `spikeforge.refsim`, plus what was changed (`spikeforge.converted_from`,
`spikeforge.exported`, `spikeforge.source`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge.errors import UnsupportedError

NEURONS = (nir.LIF, nir.CubaLIF, nir.LI, nir.CubaLI, nir.IF, nir.I)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _pool_out(shape: tuple[int, ...], node: Any) -> tuple[int, ...]:
    k = np.broadcast_to(np.asarray(node.kernel_size).ravel(), (2,))
    s = np.broadcast_to(np.asarray(node.stride).ravel(), (2,))
    p = np.broadcast_to(np.asarray(node.padding).ravel(), (2,))
    c, h, w = shape
    return (c, int((h + 2 * p[0] - k[0]) // s[0] + 1), int((w + 2 * p[1] - k[1]) // s[1] + 1))


def _reshaped(node: nir.NIRNode, shape: tuple[int, ...]) -> tuple[nir.NIRNode, tuple[int, ...]]:
    """Rebuild `node` for an input of `shape` (without batch); return it and its output shape."""
    meta = dict(node.metadata or {})
    if isinstance(node, nir.Input):
        return nir.Input(input_type={"input": np.array(shape)}, metadata=meta), shape
    if isinstance(node, nir.Output):
        return nir.Output(output_type={"output": np.array(shape)}, metadata=meta), shape
    if isinstance(node, (nir.Affine, nir.Linear)):
        return node, (int(np.asarray(node.weight).shape[0]),)
    if isinstance(node, nir.Conv2d):
        new = nir.Conv2d(input_shape=tuple(int(x) for x in shape[1:]), weight=_np(node.weight), stride=node.stride,
                         padding=node.padding, dilation=node.dilation, groups=node.groups,
                         bias=_np(node.bias), metadata=meta)
        return new, tuple(int(x) for x in new.output_type["output"])
    if isinstance(node, nir.Conv1d):
        new = nir.Conv1d(input_shape=int(shape[1]), weight=_np(node.weight), stride=node.stride,
                         padding=node.padding, dilation=node.dilation, groups=node.groups,
                         bias=_np(node.bias), metadata=meta)
        return new, tuple(int(x) for x in new.output_type["output"])
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        out = _pool_out(shape, node)
        node.input_type = {"input": np.array(shape)}
        node.output_type = {"output": np.array(out)}
        return node, out
    if isinstance(node, nir.Flatten):
        new = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=int(node.start_dim),
                          end_dim=int(node.end_dim), metadata=meta)
        return new, tuple(int(x) for x in new.output_type["output"])
    if isinstance(node, NEURONS) or isinstance(node, (nir.Scale, nir.Threshold, nir.Delay)):
        changes = {}
        for f in dataclasses.fields(node):
            if f.name in ("input_type", "output_type", "metadata"):
                continue
            val = getattr(node, f.name)
            if val is None or isinstance(val, (str, dict)):
                continue
            arr = _np(val)
            if arr.ndim == 1 and len(shape) > 1 and arr.shape[0] == shape[0] and arr.shape != shape[-1:]:
                arr = arr.reshape(-1, *([1] * (len(shape) - 1)))  # per-channel parameter of a conv layer
            changes[f.name] = np.broadcast_to(arr, shape).copy()
        return dataclasses.replace(node, **changes), shape
    raise UnsupportedError(f"cannot infer the shape of a {type(node).__name__} node")


def infer_shapes(graph: nir.NIRGraph, input_shape: tuple[int, ...]) -> nir.NIRGraph:
    """Give every node concrete input/output types for a per-sample input shape (batch removed)."""
    g = G.flatten(graph)
    sched = G.schedule(g)
    out_shape: dict[str, tuple[int, ...]] = {}
    nodes: dict[str, nir.NIRNode] = {}
    for name in sched.order:
        node = g.nodes[name]
        if isinstance(node, nir.Input):
            shape = tuple(int(x) for x in input_shape)
        else:
            fwd = [s for s, rec in sched.predecessors(name) if not rec]
            if not fwd:
                raise UnsupportedError("node has no feed-forward input", node=name)
            shape = out_shape[fwd[0]]
        try:
            nodes[name], out_shape[name] = _reshaped(node, shape)
        except UnsupportedError as exc:
            raise UnsupportedError(exc.reason, node=name) from None
    ordered = {k: nodes[k] for k in g.nodes}
    return nir.NIRGraph(nodes=ordered, edges=list(g.edges), metadata=dict(g.metadata or {}), type_check=False)


def module_for(name: str, modules: dict[str, Any]) -> tuple[str, Any] | tuple[None, None]:
    """The torch module a nirtorch node name came from ('4.lif' -> module '4')."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in modules:
            return key, modules[key]
    return None, None


def _exported(node: nir.NIRNode) -> dict[str, Any]:
    """The exporter's original numeric parameters, kept for the record."""
    out = {}
    for f in dataclasses.fields(node):
        if f.name in ("input_type", "output_type", "metadata"):
            continue
        val = getattr(node, f.name)
        if val is not None and not isinstance(val, (str, dict)):
            out[f.name] = _np(val)
    return out


def _scalar(x: Any) -> Any:
    a = _np(x)
    return float(a) if a.ndim == 0 else a


# --------------------------------------------------------------------------- snnTorch


def snntorch_neuron(name: str, node: nir.NIRNode, module: Any, dt: float) -> nir.NIRNode:
    """Rebuild one neuron node from its snnTorch module, with spikeforge's conventions recorded."""
    import snntorch as snn

    kind = type(module).__name__
    shape = G.node_shape(node, "input")
    if not isinstance(module, (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)):
        raise UnsupportedError(f"snnTorch neuron {kind} is not supported (Leaky, Synaptic, RLeaky, RSynaptic are)",
                               node=name)
    mech = str(module.reset_mechanism)
    if mech == "none":
        raise UnsupportedError(f"snnTorch {kind} with reset_mechanism='none' has no NIR equivalent", node=name)
    if getattr(module, "inhibition", False):
        raise UnsupportedError(f"snnTorch {kind} with inhibition=True (winner-take-all) has no NIR equivalent",
                               node=name)
    gsf = float(_np(getattr(module, "graded_spikes_factor", 1.0)).ravel()[0])
    if gsf != 1.0:
        raise UnsupportedError(f"snnTorch {kind} with graded_spikes_factor={gsf} emits non-binary spikes", node=name)
    delay = bool(getattr(module, "reset_delay", True))
    beta = np.clip(_np(module.beta), 0.0, 1.0)
    th = _np(module.threshold)
    b = lambda x: np.broadcast_to(np.asarray(x, np.float32), shape).copy()  # noqa: E731
    source = {"beta": _scalar(module.beta), "threshold": _scalar(module.threshold), "reset_mechanism": mech,
              "reset_delay": delay}
    if np.any(beta >= 1.0) and not np.all(beta >= 1.0):
        raise UnsupportedError(f"snnTorch {kind} mixes beta = 1 (no leak) and beta < 1 in one layer", node=name)
    cuba = isinstance(module, (snn.Synaptic, snn.RSynaptic))
    if np.all(beta >= 1.0) and not cuba:
        new: nir.NIRNode = nir.IF(r=b(1.0), v_threshold=b(th), v_reset=b(0.0))
    elif cuba:
        alpha = np.clip(_np(module.alpha), 0.0, 1.0)
        source["alpha"] = _scalar(module.alpha)
        if np.any(alpha >= 1.0) or np.any(beta >= 1.0):
            raise UnsupportedError(f"snnTorch {kind} with alpha or beta = 1 has no CubaLIF time constant", node=name)
        tau_syn, tau_mem = dt / (1.0 - alpha), dt / (1.0 - beta)
        new = nir.CubaLIF(tau_syn=b(tau_syn), tau_mem=b(tau_mem), r=b(tau_mem / dt), v_leak=b(0.0),
                          v_threshold=b(th), v_reset=b(0.0), w_in=b(tau_syn / dt))
    else:
        tau = dt / (1.0 - beta)
        new = nir.LIF(tau=b(tau), r=b(tau / dt), v_leak=b(0.0), v_threshold=b(th), v_reset=b(0.0))
    meta = dict(node.metadata or {})
    meta.update({
        "spikeforge.converted_from": f"snntorch.{kind}",
        "spikeforge.reset": "subtract" if mech == "subtract" else "zero",
        "spikeforge.reset_timing": _snntorch_timing(module, mech, delay),
        "spikeforge.threshold_cmp": ">",
        "spikeforge.source": source,
        "spikeforge.exported": _exported(node),
        "spikeforge.note": "parameters recomputed from the module for dt; exporter assumed dt=1e-4",
    })
    if mech == "subtract" and not delay:
        meta["spikeforge.approximation"] = ("reset_delay=False with subtraction: snnTorch subtracts once more "
                                            "while v stays above threshold after a reset; not reproduced")
    if cuba:
        meta["spikeforge.cuba_order"] = "current_first"
    new.metadata = meta
    return new


def _snntorch_timing(module: Any, mech: str, delay: bool) -> str:
    """snnTorch applies the reset of a spike at step t during step t+1 (reset_delay=True).

    Subtraction: v_{t+1} = beta v_t + x - theta, the refsim's "delayed". Reset to zero differs by class:
    Leaky zeroes v *before* integrating (v_{t+1} = x), which yields the same spikes as an immediate
    reset; RLeaky and Synaptic zero the *integrated* value (v_{t+1} = 0), the refsim's "delayed".
    """
    import snntorch as snn

    if not delay:
        # Exact for reset to zero. For subtraction snnTorch also subtracts again at the next step while v is
        # still above threshold after a reset (input > 2 thresholds in one step); the refsim does not.
        return "immediate"
    if mech == "zero" and type(module) is snn.Leaky:
        return "immediate"
    return "delayed"


# --------------------------------------------------------------------------- Norse


def norse_neuron(name: str, node: nir.NIRNode, module: Any, dt: float) -> nir.NIRNode:
    """Rebuild one neuron node from its Norse cell with the true time constants and scaling."""
    import norse.torch as norse

    kind = type(module).__name__
    shape = G.node_shape(node, "input")
    p = module.p
    b = lambda x: np.broadcast_to(_np(x), shape).copy()  # noqa: E731
    method = getattr(p, "method", "super")
    meta = dict(node.metadata or {})
    reset = "zero"
    if isinstance(module, (norse.LIFCell, norse.LIFRecurrentCell)):
        tau_syn, tau_mem = 1.0 / _np(p.tau_syn_inv), 1.0 / _np(p.tau_mem_inv)
        # Norse: i += I (a jump), then v integrates with the *new* i, then i decays: NIR's Euler form
        # with w_in = tau_syn / dt, driven by the updated current (current_first).
        new: nir.NIRNode = nir.CubaLIF(tau_syn=b(tau_syn), tau_mem=b(tau_mem), r=b(1.0), v_leak=b(p.v_leak),
                                       v_threshold=b(p.v_th), v_reset=b(p.v_reset), w_in=b(tau_syn / dt))
        meta["spikeforge.cuba_order"] = "current_first"
        source = {"tau_syn_inv": _scalar(p.tau_syn_inv), "tau_mem_inv": _scalar(p.tau_mem_inv)}
    elif isinstance(module, norse.LIFBoxCell):
        new = nir.LIF(tau=b(1.0 / _np(p.tau_mem_inv)), r=b(1.0), v_leak=b(p.v_leak), v_threshold=b(p.v_th),
                      v_reset=b(p.v_reset))
        rm = getattr(getattr(p, "reset_method", None), "__name__", "reset_value")
        if rm not in ("reset_value", "reset_subtract"):
            raise UnsupportedError(f"Norse {kind} reset_method {rm} is not supported", node=name)
        reset = "subtract" if rm == "reset_subtract" else "zero"
        if reset == "subtract" and np.any(_np(p.v_reset) != 0):
            raise UnsupportedError(f"Norse {kind}: reset_subtract with v_reset != 0", node=name)
        source = {"tau_mem_inv": _scalar(p.tau_mem_inv), "reset_method": rm}
    elif isinstance(module, norse.LIBoxCell):
        new = nir.LI(tau=b(1.0 / _np(p.tau_mem_inv)), r=b(1.0), v_leak=b(p.v_leak))
        source = {"tau_mem_inv": _scalar(p.tau_mem_inv)}
    elif isinstance(module, norse.IAFCell):
        new = nir.IF(r=b(1.0), v_threshold=b(p.v_th), v_reset=b(p.v_reset))
        source = {}
    else:
        raise UnsupportedError(f"Norse cell {kind} is not supported (LIFCell, LIFRecurrentCell, LIFBoxCell, LIBoxCell, IAFCell are)",
                               node=name)
    if isinstance(new, (nir.LIF, nir.CubaLIF, nir.IF)):
        source.update({"v_th": _scalar(p.v_th), "v_reset": _scalar(p.v_reset), "method": str(method)})
        meta.update({"spikeforge.reset": reset, "spikeforge.reset_timing": "immediate",
                     "spikeforge.threshold_cmp": ">"})
    meta.update({
        "spikeforge.converted_from": f"norse.{kind}",
        "spikeforge.source": source,
        "spikeforge.exported": _exported(node),
        "spikeforge.note": "Norse's exporter writes tau = dt / tau_inv and w_in = 1; recomputed from the cell",
    })
    new.metadata = meta
    return new


def normalise(graph: nir.NIRGraph, module: Any, input_shape: tuple[int, ...], dt: float, framework: str,
              ) -> nir.NIRGraph:
    """Shapes, then every neuron node rebuilt from its module with conventions recorded."""
    g = infer_shapes(graph, input_shape)
    modules = dict(module.named_modules())
    fix = snntorch_neuron if framework == "snntorch" else norse_neuron
    nodes = {}
    for name, node in g.nodes.items():
        if isinstance(node, NEURONS):
            _, mod = module_for(name, modules)
            if mod is None:
                raise UnsupportedError(f"cannot find the {framework} module that produced this node", node=name)
            node = fix(name, node, mod, dt)
        nodes[name] = node
    meta = dict(g.metadata or {})
    meta[G.DT_KEY] = float(dt)
    meta["spikeforge.frontend"] = framework
    return nir.NIRGraph(nodes=nodes, edges=list(g.edges), metadata=meta, type_check=False)
