"""Node names that survive NIR files: one sanitiser for every frontend and every NIR write.

Why: exporters name nodes `/0/Gemm` (torch.onnx.export), `layer.0` (torch modules), or in any script the
user likes. In an NIR (HDF5) file a `/` opens a group and swallows the node, `.` is refused by torch's
module registry when the file is imported elsewhere, and spaces or non-ASCII characters break the
scripts that backends emit. Every name is mapped to `[A-Za-z0-9_-]+`, readable (`/0/Gemm` -> `0_Gemm`,
`café` -> `cafe`), stable (the same graph always gives the same names) and unique (`a.b` and `a/b` ->
`a_b`, `a_b_2`). The original name is kept in the node's metadata under `spikeforge.original_name`,
and `spikeforge inspect` shows it.
"""

from __future__ import annotations

import copy
import re
import unicodedata

import nir

#: node metadata key holding the name the node had before sanitising
ORIGINAL_KEY = "spikeforge.original_name"

_SAFE = re.compile(r"[A-Za-z0-9_-]")
#: node names longer than this are cut (HDF5 has no hard limit, but emitted code and tables do)
MAX_LEN = 64


def _char(c: str) -> str:
    if _SAFE.fullmatch(c):
        return c
    if ord(c) < 128:
        return "_"
    ascii_ = unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode()
    ascii_ = "".join(ch for ch in ascii_ if _SAFE.fullmatch(ch))
    return ascii_ or f"u{ord(c):04x}"


def safe_name(name: str) -> str:
    """The readable safe spelling of one name (uniqueness is `sanitise`'s job)."""
    s = "".join(_char(c) for c in str(name))
    s = re.sub(r"_+", "_", s).strip("_")[:MAX_LEN].strip("_")
    return s or "node"


def is_safe(name: str) -> bool:
    return safe_name(name) == name


def rename_map(names: list[str]) -> dict[str, str]:
    """old -> new for every name; names already safe keep theirs, the others get unique safe ones."""
    taken = {n for n in names if is_safe(n)}
    out: dict[str, str] = {}
    for n in names:
        if n in taken and n not in out:
            out[n] = n
            continue
        base = safe_name(n)
        new, k = base, 2
        while new in taken:
            new, k = f"{base}_{k}", k + 1
        taken.add(new)
        out[n] = new
    return out


def sanitise(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, dict[str, str]]:
    """A copy of `graph` with safe, unique node names (subgraphs too); returns it and {old: new} of the renamed."""
    mapping = rename_map(list(graph.nodes))
    renamed = {o: n for o, n in mapping.items() if o != n}
    subs = {k for k, v in graph.nodes.items() if isinstance(v, nir.NIRGraph)}
    if not renamed and not subs:
        return graph, {}
    nodes: dict[str, nir.NIRNode] = {}
    for old, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            inner, inner_map = sanitise(node)
            renamed.update({f"{old}.{o}": f"{mapping[old]}.{n}" for o, n in inner_map.items()})
            node = inner
        if old in renamed:
            node = copy.copy(node)
            meta = dict(getattr(node, "metadata", None) or {})
            meta.setdefault(ORIGINAL_KEY, str(old))
            node.metadata = meta
        nodes[mapping[old]] = node
    edges = [(mapping.get(s, s), mapping.get(d, d)) for s, d in graph.edges]
    out = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata or {}), type_check=False)
    return out, renamed


def original_name(node: nir.NIRNode, name: str) -> str:
    """The name a node had in the user's model (its current name when it was never renamed)."""
    return str((getattr(node, "metadata", None) or {}).get(ORIGINAL_KEY, name))
