"""Short, readable summaries of artifacts, verification results and profiles.

Why: the same few lines serve a notebook (`__repr__`, `_repr_html_`) and the CLI (what compile decided),
so a user sees the board, the passes' decisions, the mapping and the warnings without opening
manifest.json. Pure formatting: nothing here imports a backend or a heavy library.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .artifact import Artifact
    from .interfaces import Profile
    from .verify import VerifyResult


def si(value: float, unit: str) -> str:
    """A value with an SI prefix for J, s and W (1.2e-6 J -> '1.2 uJ'); other units with separators."""
    if unit in ("J", "s", "W") and value != 0:
        for scale, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f"),
                              (1e-18, "a")):
            if abs(value) >= scale:
                return f"{value / scale:.4g} {prefix}{unit}"
        return f"{value:.3e} {unit}"
    return f"{value:,.6g} {unit}".rstrip()


def artifact_warnings(meta: dict[str, Any]) -> list[str]:
    """Every warning a compile recorded, each once: backend, pass and structured semantic warnings."""
    from .semantics import warnings_of

    texts = [str(w) for w in meta.get("warnings", []) or []]
    for rep in (meta.get("passes") or {}).values():
        if isinstance(rep, dict):
            texts += [str(w) for w in rep.get("warnings", []) or []]
    texts += [w.text() for w in warnings_of(meta)]
    return dedupe(texts)


def dedupe(texts: list[str]) -> list[str]:
    """Drop repeats, also a text repeated with a 'backend: ' prefix (Python warning vs. recorded one)."""
    out: list[str] = []
    for t in texts:
        t = t.strip()
        if not t or any(t == o or t.endswith(": " + o) or o.endswith(": " + t) for o in out):
            continue
        out.append(t)
    return out


def _bits(layers: list[dict[str, Any]]) -> str:
    parts = []
    for layer in layers:
        zeroed = layer.get("zeroed_fraction")
        z = f", {zeroed:.0%} zeroed" if isinstance(zeroed, (int, float)) and zeroed else ""
        parts.append(f"{layer.get('name')} w{layer.get('weight_bits')}/a{layer.get('activation_bits')}{z}")
    return "; ".join(parts)


def decisions(meta: dict[str, Any]) -> list[str]:
    """What the passes chose (bits per layer, T, sparsity achieved) and how the program maps to the board."""
    lines: list[str] = []
    passes = meta.get("passes") or {}
    q = passes.get("quantize")
    if isinstance(q, dict):
        lines.append(f"bit budget {q.get('bit_budget'):g} (spent {q.get('bits_spent', 0):.4g}), T {q.get('timesteps')}: "
                     f"{_bits(q.get('layers') or [])}  [weight bits/activation bits]")
    p = passes.get("prune")
    if isinstance(p, dict):
        removed = p.get("neurons_removed") or {}
        extra = ("; neurons removed " + ", ".join(f"{k} {v}" for k, v in removed.items())) if removed else ""
        lines.append(f"pruning {p.get('method')}: sparsity requested {p.get('sparsity_requested'):.3g}, achieved "
                     f"{p.get('sparsity', 0):.3g} ({p.get('weights_before')} -> {p.get('weights_after')} weights){extra}")
    d = passes.get("delays")
    if isinstance(d, dict):
        lines.append(f"delays {d.get('policy')}: {d.get('synapses_with_delay')} delayed synapses, "
                     f"{d.get('relays_added')} relay neurons, max rounding {d.get('max_quantisation_error_s', 0):.3g} s")
    mapping = meta.get("mapping")
    if isinstance(mapping, dict):
        scalars = [f"{k} {v}" for k, v in mapping.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        if scalars:
            lines.append("mapping: " + ", ".join(scalars))
    summary = meta.get("summary")
    if isinstance(summary, dict):
        seen = set(mapping) if isinstance(mapping, dict) else set()
        items = [(k, v) for k, v in summary.items() if k not in seen]
        short = [f"{k} {v}" for k, v in items if len(str(v)) <= 40]
        if short:
            lines.append("summary: " + "; ".join(short))
        lines += [f"{k}: {v}" for k, v in items if len(str(v)) > 40]
    else:
        facts = [f"{k} {meta[k]}" for k in ("neurons", "synapses", "nodes") if k in meta]
        if facts:
            lines.append("mapping: " + ", ".join(facts))
    if "latency_steps" in meta and not (isinstance(summary, dict) and "pipeline_latency_steps" in summary):
        lines.append(f"pipeline latency: {meta['latency_steps']} steps")
    return lines


def artifact_text(art: Artifact) -> str:
    where = f" at {art.path}" if art.path else ""
    lines = [f"Artifact(board={art.board!r}, backend={art.backend!r}{where}, dt={art.meta.get('dt')} s)"]
    lines += ["  " + s for s in decisions(art.meta)]
    warns = artifact_warnings(art.meta)
    lines += [f"  warning: {w}" for w in warns] or ["  no warnings"]
    return "\n".join(lines)


def _html_table(title: str, header: list[str], rows: list[list[str]], foot: list[str] = ()) -> str:
    e = html.escape
    head = "".join(f"<th style='text-align:left'>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{e(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    notes = "".join(f"<div>{e(n)}</div>" for n in foot)
    return f"<div><b>{e(title)}</b><table><tr>{head}</tr>{body}</table>{notes}</div>"


def artifact_html(art: Artifact) -> str:
    rows = [["board", art.board], ["backend", art.backend], ["dt", f"{art.meta.get('dt')} s"]]
    rows += [["decision" if i else "compile", s] for i, s in enumerate(decisions(art.meta))]
    rows += [["warning", w] for w in artifact_warnings(art.meta)]
    return _html_table(f"spikeforge artifact for {art.board}", ["", ""], rows)


def verify_text(res: VerifyResult) -> str:
    lines = [f"VerifyResult(board={res.board!r}, {'PASSED' if res.passed else 'FAILED'})"]
    lines += [f"  {'pass' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in res.checks]
    lines += [f"  {k} = {v:.6g}" for k, v in sorted(res.metrics.items())]
    return "\n".join(lines)


def verify_html(res: VerifyResult) -> str:
    rows = [[c.name, "pass" if c.passed else "FAIL", c.detail] for c in res.checks]
    rows += [[k, "", f"{v:.6g}"] for k, v in sorted(res.metrics.items())]
    title = f"verify {res.board}: {'PASSED' if res.passed else 'FAILED'}"
    return _html_table(title, ["check / metric", "result", "detail"], rows)


def profile_rows(prof: Profile) -> list[list[str]]:
    rows = []
    for kind, items in (("energy", prof.energy), ("latency", prof.latency), ("resource", prof.resources)):
        rows += [[kind, i.component, si(i.value, i.unit), i.formula, "; ".join(i.sources)] for i in items]
    return rows


def profile_text(prof: Profile) -> str:
    lines = [f"Profile(board={prof.board!r}, energy per inference {si(prof.energy_total, 'J')})"]
    lines += [f"  {r[0]:<8} {r[1]:<24} {r[2]:>12}  ({r[3]})" for r in profile_rows(prof)]
    lines += [f"  note: {n}" for n in prof.notes]
    return "\n".join(lines)


def profile_html(prof: Profile) -> str:
    rows = profile_rows(prof) + [["energy", "total per inference", si(prof.energy_total, "J"), "sum", ""]]
    return _html_table(f"profile {prof.board}", ["kind", "component", "value", "formula", "sources"], rows,
                       prof.notes)
