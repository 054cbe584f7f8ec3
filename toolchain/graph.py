"""NIR graph core: read, write, validate, flatten subgraphs and order nodes.

Everything downstream (passes, backends, the reference simulator) works on a flat, validated
`nir.NIRGraph`; this module is the one place that guarantees that shape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import nir
import numpy as np

from .atomic import atomic_file
from .errors import GraphError
from .validate import shape_of

#: NIR 1.0 primitives the toolchain understands.
KNOWN_NODES: tuple[type, ...] = (
    nir.Input,
    nir.Output,
    nir.Affine,
    nir.Linear,
    nir.Scale,
    nir.Conv1d,
    nir.Conv2d,
    nir.SumPool2d,
    nir.AvgPool2d,
    nir.Flatten,
    nir.LI,
    nir.LIF,
    nir.CubaLI,
    nir.CubaLIF,
    nir.IF,
    nir.I,
    nir.Threshold,
    nir.Delay,
    nir.NIRGraph,
)

#: Fields that are time constants: must be strictly positive.
TAU_FIELDS = ("tau", "tau_mem", "tau_syn")

#: Graph metadata key for the simulation time step in seconds.
DT_KEY = "spikeforge.dt"


#: graph metadata key of the warnings a loader raised (a list of str, popped before the graph is written)
WARNINGS_KEY = "spikeforge.load_warnings"


def add_warning(graph: nir.NIRGraph, text: str) -> None:
    """Attach one warning about how a model was loaded; the CLI prints it (compile keeps it in the artifact)."""
    graph.metadata = dict(graph.metadata or {})
    graph.metadata.setdefault(WARNINGS_KEY, []).append(str(text))


def pop_warnings(graph: nir.NIRGraph) -> list[str]:
    """Remove and return the loader's warnings (they are reported, not written into NIR files)."""
    meta = graph.metadata or {}
    return [str(w) for w in meta.pop(WARNINGS_KEY, None) or []]


def read(path: str | os.PathLike, *, lenient: bool = False) -> nir.NIRGraph:
    """Read an NIR file, turning every low-level failure into one clear error naming the file.

    A file that fails nir's type check (another exporter declared a shape that disagrees with the node
    producing it) is refused, with a message naming `--lenient`; with `lenient=True` the unambiguous
    repairs of `repair_types` are made, one warning each (`pop_warnings`).
    """
    p = Path(path)
    if not p.exists():
        raise GraphError("file not found", file=str(p))
    if p.is_dir():
        raise GraphError("is a directory, expected an NIR (.nir, HDF5) file", file=str(p))
    from .nirbounds import check_hdf5, probe_read

    probe_read(p)
    check_hdf5(p)
    try:
        graph = nir.read(str(p))
    except Exception as exc:  # h5py/nir raise many kinds; the user needs one line
        unknown = _unknown_type(p)
        if unknown:
            raise GraphError(f"unknown NIR node type {unknown!r}; supported: "
                             + ", ".join(sorted(t.__name__ for t in KNOWN_NODES)), file=str(p)) from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        try:
            graph = nir.read(str(p), type_check=False)
        except Exception:
            graph = None
        if graph is None:
            raise GraphError(f"not a readable NIR file ({type(exc).__name__}: {reason})", file=str(p)) from None
        if not lenient:
            raise GraphError(f"fails NIR's type check ({reason})", file=str(p),
                             hint="if another tool declared a wrong shape, --lenient (Python: lenient=True) "
                                  "repairs unambiguous cases with a warning each") from None
        repairs = repair_types(graph, file=str(p))
        for text in repairs:
            add_warning(graph, f"{p.name}: --lenient repaired {text}")
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.NIRGraph.from_list(graph)
    return graph


def _unknown_type(p: Path) -> str | None:
    """The first node 'type' string nir does not know (nir reports it as a bare AssertionError)."""
    from .nirbounds import node_types

    known = {t.__name__ for t in KNOWN_NODES} | {n for n in dir(nir) if n[:1].isupper()}
    for t in node_types(p):
        if t not in known:
            return t
    return None


def repair_types(graph: nir.NIRGraph, *, file: str | None = None) -> list[str]:
    """Make the unambiguous repairs that let a graph pass nir's type check; return one line per repair.

    Unambiguous: an Output node's declared shape disagrees with its single producer's output shape but
    holds the same number of values (e.g. [1, 1, 1] behind a LIF of shape [1]); the Output takes the
    producer's shape. Anything else that still fails the check is an error naming it.
    """
    repairs: list[str] = []
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            repairs += [f"{name}.{r}" for r in repair_types(node, file=file)]
            continue
        if not isinstance(node, nir.Output):
            continue
        srcs = [s for s, d in graph.edges if d == name]
        if len(srcs) != 1 or srcs[0] not in graph.nodes:
            continue
        have, want = node_shape(node, "input"), node_shape(graph.nodes[srcs[0]], "output")
        if have is None or want is None or have == want or int(np.prod(have)) != int(np.prod(want)):
            continue
        shape = np.asarray(want, dtype=np.int64)
        node.input_type = {"input": shape}
        node.output_type = {"output": shape}
        repairs.append(f"Output '{name}': declared shape {list(have)} -> {list(want)}, the shape of its "
                       f"producer '{srcs[0]}'")
    graph._update_input_output_types()
    try:
        graph.check_types()
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GraphError(f"fails NIR's type check and --lenient has no unambiguous repair for it ({reason})",
                         file=file) from None
    return repairs


def write(graph: nir.NIRGraph, path: str | os.PathLike) -> dict[str, str]:
    """Write an NIR file atomically with safe node names, and read it back before it counts as written.

    Names go through `spikeforge.names.sanitise` (a `/` would otherwise become an HDF5 group and swallow
    the node). The file is read back with the reader every later command uses and compared with what
    was meant to be written; a difference is an error and nothing is left at `path`. Returns the
    renames {old: new} (empty when every name was already safe).
    """
    from .names import sanitise

    safe, renamed = sanitise(graph)
    if WARNINGS_KEY in (safe.metadata or {}):  # reported, not persisted
        safe = nir.NIRGraph(nodes=safe.nodes, edges=safe.edges, type_check=False,
                            metadata={k: v for k, v in safe.metadata.items() if k != WARNINGS_KEY})
    with atomic_file(path) as tmp:
        try:
            nir.write(tmp, safe)
        except TypeError as exc:  # h5py: "Scalar datasets don't support chunk/filter options" (0-d arrays)
            if "Scalar datasets" not in str(exc):
                raise
            nir.write(tmp, safe, compression=None)
        back = read(tmp)
        diff = difference(safe, back)
        if diff:
            raise GraphError(f"the NIR file written does not read back equal: {diff}", file=str(path))
    return renamed


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b) and all(
            _same_value(a[k], b[k]) for k in a)
    if isinstance(a, (str, bytes)) or isinstance(b, (str, bytes)):
        def txt(v: object) -> str:
            return v.decode() if isinstance(v, bytes) else str(v)
        return txt(a) == txt(b)
    try:
        x, y = np.asarray(a), np.asarray(b)
        if x.dtype == object or y.dtype == object:
            return str(a) == str(b)
        return x.size == y.size and bool(np.array_equal(x.ravel(), y.ravel()))
    except (TypeError, ValueError):
        return str(a) == str(b)


def difference(a: nir.NIRGraph, b: nir.NIRGraph) -> str | None:
    """First difference between two graphs (names, types, edges, parameters, metadata), or None."""
    if set(a.nodes) != set(b.nodes):
        return f"nodes {sorted(set(a.nodes) ^ set(b.nodes))} differ"
    if sorted(map(tuple, a.edges)) != sorted(map(tuple, b.edges)):
        return f"edges differ ({sorted(set(map(tuple, a.edges)) ^ set(map(tuple, b.edges)))})"
    if not _same_value(dict(a.metadata or {}), dict(b.metadata or {})):
        return "graph metadata differs"
    for name, na in a.nodes.items():
        nb = b.nodes[name]
        if type(na) is not type(nb):
            return f"node '{name}' is {type(na).__name__}, read back as {type(nb).__name__}"
        if isinstance(na, nir.NIRGraph):
            inner = difference(na, nb)
            if inner:
                return f"in subgraph '{name}': {inner}"
            continue
        for f in fields(na):
            if f.name in ("input_type", "output_type"):
                continue
            va, vb = getattr(na, f.name), getattr(nb, f.name)
            if f.name == "metadata":
                va, vb = dict(va or {}), dict(vb or {})
            if not _same_value(va, vb):
                return f"node '{name}' field '{f.name}' differs"
    return None


def node_shape(node: nir.NIRNode, port: str) -> tuple[int, ...] | None:
    """Shape of a node's input ('input') or output ('output') port, or None when NIR leaves it open."""
    return shape_of(node.input_type if port == "input" else node.output_type)


def flatten(graph: nir.NIRGraph, prefix: str = "") -> nir.NIRGraph:
    """Inline NIR subgraphs so every node is a primitive; inner names become 'outer.inner'."""
    if not any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        return graph
    nodes: dict[str, nir.NIRNode] = {}
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    inner_edges: list[tuple[str, str]] = []
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            sub = flatten(node)
            ins = [k for k, v in sub.nodes.items() if isinstance(v, nir.Input)]
            outs = [k for k, v in sub.nodes.items() if isinstance(v, nir.Output)]
            for k, v in sub.nodes.items():
                if not isinstance(v, (nir.Input, nir.Output)):
                    nodes[f"{name}.{k}"] = v
            entry[name] = []
            exit_[name] = []
            for s, d in sub.edges:
                if s in ins and d in outs:
                    raise GraphError("subgraph wires an input straight to an output", node=name)
                if s in ins:
                    entry[name].append(f"{name}.{d}")
                    entry[f"{name}.{s}"] = [f"{name}.{d}"]
                elif d in outs:
                    exit_[name].append(f"{name}.{s}")
                    exit_[f"{name}.{d}"] = [f"{name}.{s}"]
                else:
                    inner_edges.append((f"{name}.{s}", f"{name}.{d}"))
        else:
            nodes[name] = node
    edges = list(inner_edges)
    for s, d in graph.edges:
        srcs = exit_.get(s, [s])
        dsts = entry.get(d, [d])
        edges.extend((a, b) for a in srcs for b in dsts)
    out = nir.NIRGraph(nodes=nodes, edges=_dedupe(edges), metadata=dict(graph.metadata or {}), type_check=False)
    return out


def _dedupe(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    result = []
    for e in edges:
        if e not in seen:
            seen.add(e)
            result.append(e)
    return result


@dataclass(frozen=True)
class Schedule:
    """Evaluation order of a flat graph and the edges that close loops (read with one step of latency)."""

    order: tuple[str, ...]
    forward: tuple[tuple[str, str], ...]
    recurrent: tuple[tuple[str, str], ...]

    def predecessors(self, name: str) -> list[tuple[str, bool]]:
        """(source, is_recurrent) pairs feeding `name`, in a fixed order."""
        preds = [(s, False) for s, d in self.forward if d == name]
        preds += [(s, True) for s, d in self.recurrent if d == name]
        return preds


def schedule(graph: nir.NIRGraph) -> Schedule:
    """Topological order with recurrent edges allowed.

    A depth-first walk from the Input nodes (then any unvisited node, in file order) marks an edge as
    recurrent when it points back to a node still on the walk's stack. Removing those edges leaves a DAG
    whose topological order is the evaluation order within one time step.
    """
    names = list(graph.nodes)
    succ: dict[str, list[str]] = {n: [] for n in names}
    for s, d in graph.edges:
        for end in (s, d):
            if end not in graph.nodes:
                raise GraphError(f"edge ({s!r}, {d!r}) refers to a node that does not exist", node=end)
        succ[s].append(d)
    starts = [n for n in names if isinstance(graph.nodes[n], nir.Input)] + names
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    recurrent: set[tuple[str, str]] = set()
    for root in starts:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            st = state.get(nxt)
            if st == 1:
                recurrent.add((node, nxt))
            elif st is None:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    forward = [e for e in graph.edges if e not in recurrent]
    indeg = {n: 0 for n in names}
    for _, d in forward:
        indeg[d] += 1
    order: list[str] = []
    ready = [n for n in names if indeg[n] == 0]
    fsucc: dict[str, list[str]] = {n: [] for n in names}
    for s, d in forward:
        fsucc[s].append(d)
    while ready:
        n = ready.pop(0)
        order.append(n)
        for d in fsucc[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    rec = tuple(e for e in graph.edges if e in recurrent)
    return Schedule(order=tuple(order), forward=tuple(forward), recurrent=rec)


def validate(graph: nir.NIRGraph, *, file: str | None = None) -> nir.NIRGraph:
    """Check a graph before anything runs; return the flat graph.

    Checks (toolchain/validate.py): known node types, parameter domains and internal shapes of every
    node, sizes below documented maxima, edges between existing nodes, shapes that agree along edges,
    every node on a path Input -> node -> Output, every loop through a stateful node. Errors name the
    file, node, field, what was expected and what was found.
    """
    from . import validate as V

    if not isinstance(graph, nir.NIRGraph):
        raise GraphError(f"expected an NIR graph, got {type(graph).__name__}", file=file)
    g = flatten(graph)
    if not g.nodes:
        raise GraphError("graph has no nodes", file=file)
    try:
        dt = get_dt(g)
    except (TypeError, ValueError, IndexError):
        raise GraphError("graph metadata 'spikeforge.dt' is not a number", file=file, field=DT_KEY) from None
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise GraphError(f"expected a finite time step > 0 s, got {dt}", file=file, field=DT_KEY)
    for name, node in g.nodes.items():
        if not isinstance(node, KNOWN_NODES):
            raise GraphError(
                f"unknown node type {type(node).__name__}; supported: "
                + ", ".join(sorted(t.__name__ for t in KNOWN_NODES if t is not nir.NIRGraph)),
                file=file,
                node=name,
            )
        V.check_node(name, node, file=file, dt=dt)
    V.check_structure(g, file=file)
    for s, d in g.edges:
        so, di = node_shape(g.nodes[s], "output"), node_shape(g.nodes[d], "input")
        if so is not None and di is not None and int(np.prod(so)) != int(np.prod(di)):
            raise GraphError(
                f"shape mismatch on edge {s} -> {d}: {s} produces {so}, {d} expects {di}", file=file, node=d
            )
    return g


def get_dt(graph: nir.NIRGraph, override: float | None = None) -> float | None:
    """The time step recorded by a frontend (graph metadata), unless the user overrides it."""
    if override is not None:
        return float(override)
    meta = graph.metadata or {}
    value = meta.get(DT_KEY, meta.get("dt"))
    return None if value is None else float(np.asarray(value).ravel()[0])


def input_nodes(graph: nir.NIRGraph) -> list[str]:
    return [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]


def output_nodes(graph: nir.NIRGraph) -> list[str]:
    return [k for k, v in graph.nodes.items() if isinstance(v, nir.Output)]
