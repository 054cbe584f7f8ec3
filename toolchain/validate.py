"""The graph validator: every graph from every frontend, and every artifact's graphs, passes here.

Why one place: the passes, the backends and the reference simulator all assume a graph whose
parameters are in their domain, whose shapes chain along every edge, whose loops are causal and whose
sizes fit in memory. A graph that breaks any of these must stop here with one error naming the node,
the field, what was expected and what was found, never later as a NumPy/PyTorch exception or a
terabyte allocation.

Parameter domains follow the NIR definitions (Pedersen et al., "Neuromorphic intermediate
representation", Nat. Commun. 15, 8122 (2024), Table 1, and the nir 1.0 docs):

* LI/LIF/CubaLI/CubaLIF: ``tau dv/dt = (v_leak - v) + r I`` and ``tau_syn di/dt = -i + w_in I``.
  A time constant must be > 0 (at tau <= 0 the ODE is not a leak but an explosion, and the Euler step
  divides by it).
* LIF/CubaLIF/IF spike when ``v - v_threshold`` crosses zero (``z = H(v - v_threshold)``) and then
  reset. Neuron state starts at 0, so a threshold <= 0 fires at rest on every step whatever the input
  and, with a subtractive reset, drives v towards -inf. We require ``v_threshold > 0``.
  `Threshold` (a stateless Heaviside on its input) only needs a finite threshold.
* Delay(d): the output at t is the input at ``t - d``; d >= 0 and the buffer it needs
  (``round(d / dt) + 1`` copies of the input) is bounded by `MAX_DELAY_ELEMENTS`.
"""

from __future__ import annotations

from collections.abc import Iterable

import nir
import numpy as np

from .errors import GraphError

#: Documented maxima, checked before anything is allocated from a graph's numbers.
MAX_NODES = 100_000
MAX_EDGES = 1_000_000
#: elements in one population (an Input, a neuron layer, a conv output) per sample
MAX_POPULATION = 1 << 24
#: elements in one parameter array (a weight matrix); 256 Mi float32 = 1 GiB
MAX_PARAMETER_ELEMENTS = 1 << 28
#: delay line: (max delay steps + 1) x population elements per sample
MAX_DELAY_ELEMENTS = 1 << 26
MAX_DELAY_STEPS = 1 << 20
#: conv/pool attributes: kernel, stride, dilation, padding per axis
MAX_KERNEL_ATTR = 4096

STATEFUL = (nir.LI, nir.LIF, nir.CubaLI, nir.CubaLIF, nir.IF, nir.I, nir.Delay)
NEURON_FIELDS = {
    nir.LI: ("tau", "r", "v_leak"),
    nir.LIF: ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    nir.CubaLI: ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    nir.CubaLIF: ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    nir.IF: ("r", "v_threshold", "v_reset"),
    nir.I: ("r",),
}
TAU_FIELDS = ("tau", "tau_mem", "tau_syn")


class _Ctx:
    def __init__(self, file: str | None, node: str):
        self.file, self.node = file, node

    def fail(self, reason: str, field: str | None = None) -> GraphError:
        return GraphError(reason, file=self.file, node=self.node, field=field)


def _array(ctx: _Ctx, value, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ctx.fail(f"expected numbers, found {type(value).__name__}", field) from None
    if arr.size > MAX_PARAMETER_ELEMENTS:
        raise ctx.fail(f"expected at most {MAX_PARAMETER_ELEMENTS} elements, found {arr.size}", field)
    if not np.all(np.isfinite(arr)):
        raise ctx.fail(f"parameter is not finite (expected finite values, found {arr[~np.isfinite(arr)].ravel()[0]})", field)
    return arr


def _ints(ctx: _Ctx, value, field: str, n: int, lo: int, hi: int = MAX_KERNEL_ATTR) -> tuple[int, ...]:
    """An int or per-axis ints, each in [lo, hi]."""
    arr = _array(ctx, value, field).ravel()
    if arr.size not in (1, n):
        raise ctx.fail(f"expected 1 or {n} values, found {arr.size}", field)
    if np.any(arr != np.round(arr)) or np.any(arr < lo) or np.any(arr > hi):
        raise ctx.fail(f"expected integers in [{lo}, {hi}], found {arr.tolist()}", field)
    vals = tuple(int(x) for x in arr)
    return vals * n if len(vals) == 1 else vals


def shape_of(types: dict | None) -> tuple[int, ...] | None:
    """The single port shape of an input_type/output_type dict, or None when NIR leaves it open."""
    if not types:
        return None
    value = next(iter(types.values()))
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value))
    if arr.size == 0 or arr.dtype == object or arr.dtype.kind not in "iuf":
        return None
    return tuple(int(x) for x in arr)


def _check_shape(ctx: _Ctx, shp: tuple[int, ...] | None, field: str) -> None:
    if shp is None:
        return
    if any(d <= 0 for d in shp):
        raise ctx.fail(f"expected positive dimensions, found {shp}", field)
    if int(np.prod([float(d) for d in shp])) > MAX_POPULATION:
        raise ctx.fail(f"expected at most {MAX_POPULATION} elements, found shape {shp}", field)


def _sizes_agree(ctx: _Ctx, arrays: dict[str, np.ndarray], size: int | None) -> None:
    sizes = {k: a.size for k, a in arrays.items() if a.size != 1}
    if size is not None:
        bad = {k: s for k, s in sizes.items() if s != size}
        if bad:
            k = next(iter(bad))
            raise ctx.fail(f"expected {size} values (the node's size) or 1, found {bad[k]}", k)
    elif len(set(sizes.values())) > 1:
        k = sorted(sizes)[-1]
        raise ctx.fail(f"parameter lengths disagree: {sizes}", k)


def _check_neuron(ctx: _Ctx, node: nir.NIRNode, names: Iterable[str]) -> None:
    arrays = {f: _array(ctx, getattr(node, f), f) for f in names}
    for f in TAU_FIELDS:
        if f in arrays and np.any(arrays[f] <= 0):
            raise ctx.fail(f"time constant must be > 0 (NIR: tau dv/dt = ...), found {arrays[f].min()}", f)
    if "v_threshold" in arrays and np.any(arrays["v_threshold"] <= 0):
        raise ctx.fail("threshold must be > 0: state starts at 0, so a threshold <= 0 fires at rest on "
                       f"every step (NIR z = H(v - v_threshold)); found {arrays['v_threshold'].min()}", "v_threshold")
    shp = shape_of(node.input_type)
    _sizes_agree(ctx, arrays, int(np.prod(shp)) if shp else None)


def _check_conv(ctx: _Ctx, node: nir.Conv1d | nir.Conv2d, dims: int) -> None:
    w = _array(ctx, node.weight, "weight")
    if w.ndim != dims + 2:
        raise ctx.fail(f"expected a {dims + 2}-d weight (out, in/groups, kernel...), found shape {w.shape}", "weight")
    if min(w.shape) <= 0:
        raise ctx.fail(f"expected a non-empty weight, found shape {w.shape}", "weight")
    out_ch = w.shape[0]
    if node.bias is not None:
        b = _array(ctx, node.bias, "bias")
        if b.size not in (1, out_ch):
            raise ctx.fail(f"expected {out_ch} values (one per output channel), found {b.size}", "bias")
    stride = _ints(ctx, node.stride, "stride", dims, 1)
    dil = _ints(ctx, node.dilation, "dilation", dims, 1)
    groups = _ints(ctx, node.groups, "groups", 1, 1, 1 << 20)[0]
    pad = node.padding
    if isinstance(pad, (bytes, np.bytes_)):
        pad = pad.decode()
    if isinstance(pad, str):
        if pad not in ("same", "valid"):
            raise ctx.fail(f"expected 'same', 'valid' or integers, found {pad!r}", "padding")
        if pad == "same" and any(s != 1 for s in stride):
            raise ctx.fail("padding 'same' needs stride 1", "padding")
        pads = (0,) * dims if pad == "valid" else None
    else:
        pads = _ints(ctx, pad, "padding", dims, 0)
    if out_ch % groups:
        raise ctx.fail(f"output channels {out_ch} are not divisible by groups {groups}", "groups")
    ishape = shape_of(node.input_type)  # nir derives (weight in-channels, *input_shape)
    if ishape is None and node.input_shape is not None:
        ishape = (w.shape[1], *(int(x) for x in np.atleast_1d(np.asarray(node.input_shape)).ravel()))
    if ishape is None:
        return
    if len(ishape) != dims + 1:
        raise ctx.fail(f"expected (channels, {'length' if dims == 1 else 'height, width'}), found {ishape}",
                       "input_shape")
    _check_shape(ctx, ishape, "input_shape")
    if ishape[0] != w.shape[1] * groups:
        raise ctx.fail(f"input has {ishape[0]} channels, weight expects {w.shape[1]} x groups {groups}", "weight")
    if pads is None:
        return
    for ax in range(dims):
        k = w.shape[2 + ax]
        o = (ishape[1 + ax] + 2 * pads[ax] - dil[ax] * (k - 1) - 1) // stride[ax] + 1
        if o <= 0:
            raise ctx.fail(f"kernel {k} (dilation {dil[ax]}) is larger than the padded input "
                           f"{ishape[1 + ax]} + 2 x {pads[ax]}; output would be empty", "weight")


def _check_pool(ctx: _Ctx, node) -> None:
    k = _ints(ctx, node.kernel_size, "kernel_size", 2, 1)
    _ints(ctx, node.stride, "stride", 2, 1)
    p = _ints(ctx, node.padding, "padding", 2, 0)
    if any(pi * 2 > ki for pi, ki in zip(p, k)):
        raise ctx.fail(f"padding {p} must be at most half the kernel {k}", "padding")
    shp = shape_of(node.input_type)
    if shp is not None and len(shp) == 3 and any(shp[1 + i] + 2 * p[i] < k[i] for i in range(2)):
        raise ctx.fail(f"kernel {k} is larger than the padded input {shp}", "kernel_size")


def _check_delay(ctx: _Ctx, node: nir.Delay, dt: float | None) -> None:
    d = _array(ctx, node.delay, "delay")
    if d.size == 0:
        raise ctx.fail("expected at least one delay value, found an empty array", "delay")
    if np.any(d < 0):
        raise ctx.fail(f"delays must be >= 0, found {d.min()}", "delay")
    if dt is None:
        return
    steps = float(d.max()) / dt
    shp = shape_of(node.input_type)
    size = int(np.prod(shp)) if shp else d.size
    if steps > MAX_DELAY_STEPS or (steps + 1) * size > MAX_DELAY_ELEMENTS:
        raise ctx.fail(f"delay {d.max()} s at dt {dt} s is {steps:.3g} steps; the delay line would need "
                       f"{(steps + 1) * size:.3g} elements per sample (maximum {MAX_DELAY_ELEMENTS}, "
                       f"{MAX_DELAY_STEPS} steps)", "delay")


def check_node(name: str, node: nir.NIRNode, *, file: str | None = None, dt: float | None = None) -> None:
    """Parameter domains and internal shape consistency of one primitive node."""
    ctx = _Ctx(file, name)
    for port, types in (("input_type", node.input_type), ("output_type", node.output_type)):
        _check_shape(ctx, shape_of(types), port)
    if isinstance(node, tuple(NEURON_FIELDS)):
        _check_neuron(ctx, node, NEURON_FIELDS[type(node)])
    elif isinstance(node, (nir.Affine, nir.Linear)):
        w = _array(ctx, node.weight, "weight")
        if w.ndim != 2 or min(w.shape) <= 0:
            raise ctx.fail(f"expected a non-empty 2-d weight (out, in), found shape {w.shape}", "weight")
        if isinstance(node, nir.Affine):
            b = _array(ctx, node.bias, "bias")
            if b.size != w.shape[0]:
                raise ctx.fail(f"expected {w.shape[0]} values (weight has {w.shape[0]} rows), found shape "
                               f"{b.shape}", "bias")
    elif isinstance(node, nir.Scale):
        s = _array(ctx, node.scale, "scale")
        if s.size == 0:
            raise ctx.fail("expected at least one value, found an empty array", "scale")
    elif isinstance(node, nir.Threshold):
        _array(ctx, node.threshold, "threshold")
    elif isinstance(node, nir.Conv2d):
        _check_conv(ctx, node, 2)
    elif isinstance(node, nir.Conv1d):
        _check_conv(ctx, node, 1)
    elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        _check_pool(ctx, node)
    elif isinstance(node, nir.Delay):
        _check_delay(ctx, node, dt)
    elif isinstance(node, nir.Flatten):
        shp = shape_of(node.input_type)
        nd = len(shp) if shp else None
        for f in ("start_dim", "end_dim"):
            v = getattr(node, f)
            if not isinstance(v, (int, np.integer)) or (nd is not None and not -nd - 1 <= int(v) <= nd):
                raise ctx.fail(f"expected an axis index within the input's {nd} dimensions, found {v!r}", f)
    elif isinstance(node, nir.Input):
        if shape_of(node.input_type) is None and shape_of(node.output_type) is None:
            raise ctx.fail("expected a shape for the input, found none", "input_type")


def _sccs(names: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan: no recursion limit on long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in names:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(succ[w])))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                out.append(comp)
    return out


def _reach(starts: Iterable[str], succ: dict[str, list[str]]) -> set[str]:
    seen = set(starts)
    todo = list(seen)
    while todo:
        for d in succ[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def check_structure(g: nir.NIRGraph, *, file: str | None = None) -> None:
    """Edges, reachability Input -> node -> Output, and causal loops (each through a stateful node)."""
    if len(g.nodes) > MAX_NODES or len(g.edges) > MAX_EDGES:
        raise GraphError(f"graph has {len(g.nodes)} nodes and {len(g.edges)} edges; the maximum is "
                         f"{MAX_NODES} nodes and {MAX_EDGES} edges", file=file)
    names = list(g.nodes)
    succ: dict[str, list[str]] = {n: [] for n in names}
    pred: dict[str, list[str]] = {n: [] for n in names}
    for s, d in g.edges:
        for end in (s, d):
            if end not in g.nodes:
                raise GraphError(f"edge ({s!r}, {d!r}) refers to a node that does not exist", file=file, node=end)
        if isinstance(g.nodes[d], nir.Input):
            raise GraphError(f"edge {s} -> {d} points into an Input node", file=file, node=d)
        if isinstance(g.nodes[s], nir.Output):
            raise GraphError(f"edge {s} -> {d} leaves an Output node", file=file, node=s)
        succ[s].append(d)
        pred[d].append(s)
    inputs = [n for n in names if isinstance(g.nodes[n], nir.Input)]
    outputs = [n for n in names if isinstance(g.nodes[n], nir.Output)]
    if not inputs:
        raise GraphError("graph has no Input node", file=file)
    if not outputs:
        raise GraphError("graph has no Output node", file=file)
    fwd = _reach(inputs, succ)
    for n in names:
        if n not in fwd:
            raise GraphError("node is not reachable from any Input node (orphan or disconnected branch)",
                             file=file, node=n)
    back = _reach(outputs, pred)
    for n in names:
        if n not in back:
            raise GraphError("node does not reach any Output node (its result would be discarded)",
                             file=file, node=n)
    both = {n: succ[n] + pred[n] for n in names}
    main = _reach([outputs[0]], both)
    for n in names:
        if n not in main:  # nir.read gives an edge-less node its own Input/Output: still an orphan island
            raise GraphError(f"node is not connected to the rest of the graph (an orphan island; the graph's "
                             f"first output is {outputs[0]!r})", file=file, node=n)
    for comp in _sccs(names, succ):
        loop = len(comp) > 1 or comp[0] in succ[comp[0]]
        if loop and not any(isinstance(g.nodes[n], STATEFUL) for n in comp):
            raise GraphError(f"loop {' -> '.join(sorted(comp))} has no stateful node (neuron or Delay): "
                             "an algebraic loop has no defined value within one time step", file=file,
                             node=sorted(comp)[0])
