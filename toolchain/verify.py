"""`verify`: does the compiled program behave like the float model? A CI gate with teeth.

Three sides run on the same inputs: the float graph (`artifact.reference`) and, when passes ran, the
transformed graph (`artifact.program`) on the reference simulator, and the board's emulator. Each
Output node is compared spike by spike after aligning the board by its documented pipeline latency
(`metrics.py`), gated by thresholds that fit the model (`gates.py`: classifier vs signal), and the gap
is attributed to passes or board, and on failure to the first divergent NIR node (`attribution.py`).
Semantic warnings recorded by the lowering become checks. A comparison of nothing fails unless allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from xml.sax.saxutils import escape

import nir
import numpy as np

from . import graph as G
from .artifact import Artifact
from .attribution import (
    AUTO_LAYERS_MAX,
    SPIKING,
    attribute_layers,
    attribute_stages,
    describe_layer,
    neuron_count,
    stage_loss,
)
from .gates import Gates
from .interfaces import Trace
from .metrics import align, argmax_outcomes, best_shift, compare, expected_accuracy
from .semantics import warnings_of

#: samples re-run with probes for the automatic layer attribution after a failure
AUTO_LAYERS_SAMPLES = 32

#: van Rossum kernel when the output node has no time constant (IF, Threshold), in steps
DEFAULT_TAU_STEPS = 5.0


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class VerifyResult:
    board: str
    checks: list[Check] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    reference: Trace | None = None
    board_trace: Trace | None = None
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)   # per Output node: every metric
    layers: list[dict[str, Any]] = field(default_factory=list)
    gates: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        from .display import verify_text

        return verify_text(self)

    def _repr_html_(self) -> str:
        from .display import verify_html

        return verify_html(self)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "board": self.board,
            "passed": self.passed,
            "gates": self.gates,
            "metrics": self.metrics,
            "outputs": self.outputs,
            "layers": self.layers,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
        }


def scores(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """(B, classes) scores: outputs summed over time, all Output nodes concatenated."""
    parts = [np.asarray(v, dtype=np.float64).sum(axis=0).reshape(v.shape[1], -1) for _, v in sorted(outputs.items())]
    return np.concatenate(parts, axis=1)


def reference_trace(artifact: Artifact, inputs: dict[str, np.ndarray], *, probes: bool = False) -> Trace:
    """The float model's behaviour: what every board is compared against."""
    from spikeforge.emulators.reference import simulate_trace

    return simulate_trace(artifact.reference, artifact.meta.get("dt"), inputs, probes=probes)


def program_trace(artifact: Artifact, inputs: dict[str, np.ndarray]) -> Trace | None:
    """The transformed graph (after passes, still float arithmetic), or None when no pass ran."""
    if artifact.program is None:
        return None
    from spikeforge.emulators.reference import simulate_trace

    return simulate_trace(artifact.program, artifact.meta.get("dt"), inputs)


def _source_node(graph: nir.NIRGraph, output: str) -> nir.NIRNode | None:
    src = [s for s, d in graph.edges if d == output]
    return graph.nodes[src[0]] if len(src) == 1 else None


def output_kind(graph: nir.NIRGraph, output: str) -> tuple[bool, float]:
    """(spiking?, van Rossum tau in steps) of an Output node, from the node that feeds it."""
    node = _source_node(graph, output)
    spiking = isinstance(node, SPIKING)
    tau = getattr(node, "tau_mem", None) if isinstance(node, nir.CubaLIF) else getattr(node, "tau", None)
    dt = G.get_dt(graph, None)
    if tau is not None and dt:
        return spiking, float(np.clip(np.mean(np.asarray(tau, dtype=np.float64)) / dt, 1.0, 1e4))
    return spiking, DEFAULT_TAU_STEPS


def latency_of(artifact: Artifact, output: str) -> int:
    """The board's documented pipeline latency for `output` (0 when the backend records none)."""
    by = artifact.meta.get("latency_steps_by_output") or {}
    return int(by.get(output, artifact.meta.get("latency_steps", 0) or 0))


def compare_sides(graph: nir.NIRGraph, ref: Trace, got: Trace, k: int,
                  latency: dict[str, int] | None = None, *, shift: bool = True) -> dict[str, dict[str, float]]:
    """Every metric for every Output node of `ref`, the `got` side aligned by `latency`."""
    per: dict[str, dict[str, float]] = {}
    for name in sorted(ref.outputs):
        spiking, tau = output_kind(graph, name)
        lat = (latency or {}).get(name, 0)
        r = np.asarray(ref.outputs[name], dtype=np.float64)
        g = np.asarray(got.outputs[name], dtype=np.float64).reshape(r.shape)
        ra, ga = align(r, g, lat)
        m = compare(ra, ga, spiking=spiking, k=k, tau_steps=tau).metrics
        m["latency_steps"] = float(lat)
        if shift:  # the latency estimate (reported only)
            m["best_shift"] = float(best_shift(r, g, spiking))
        m["spiking"] = float(spiking)
        per[name] = m
    return per


def _output_check(name: str, m: dict[str, float], g: Gates) -> Check:
    lat, shift = int(m["latency_steps"]), int(m["best_shift"])
    align_note = f"aligned by latency {lat}" + (f"; best shift in [0, 3] would be {shift}, not used" if shift != lat
                                                 else "")
    if m["spiking"]:
        ok = m["count_error_rel"] <= g.max_count_error + 1e-12 and m["spike_match"] >= g.min_spike_match - 1e-12
        detail = (f"{m['spikes_board']:.0f} board vs {m['spikes_reference']:.0f} float spikes: count error "
                  f"{m['count_error_rel']:.1%} (max {g.max_count_error:.1%}), {m['spike_match']:.1%} matched within "
                  f"+-{g.timing_tolerance} steps (min {g.min_spike_match:.1%}), first-spike diff "
                  f"{m['first_spike_diff_mean']:.2f} steps, van Rossum {m['van_rossum']:.3f}, "
                  f"step identity {m['step_identity']:.1%}; {align_note}")
    else:
        ok = m["rms_error_norm"] <= g.max_analog_error + 1e-12
        detail = (f"analog output: RMS error {m['rms_error_norm']:.2%} of range {m['output_range']:.4g} (max "
                  f"{g.max_analog_error:.2%}), max error {m['max_error_norm']:.2%}; {align_note}")
    return Check(f"output:{name}", ok, detail)


def verify(artifact: Artifact, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None, *,
           backend=None, gates: Gates | None = None, sides: tuple[Trace, Trace | None, Trace] | None = None,
           **gate_settings: Any) -> VerifyResult:
    """Compare the board with the float model; `gate_settings` are Gates fields (max_accuracy_drop=...).

    `sides` = (float, transformed or None, board) traces computed elsewhere (a sweep shards a large
    input set across workers and merges the traces): the checks are then computed from them as if
    verify had run the three simulations itself.
    """
    from .registry import get_backend

    g = Gates.from_mapping(gate_settings) if gates is None else replace(gates, **gate_settings)
    be = backend or get_backend(artifact.backend)
    result = VerifyResult(board=artifact.board)
    batch = next(iter(inputs.values())).shape[1] if inputs else 0
    result.metrics["samples"] = float(batch)
    if batch == 0:
        result.checks.append(Check("samples", False, "no samples to compare (batch size 0)"))
        return result
    by_construction = artifact.meta.get("forward_by_construction")
    small = (min(batch, AUTO_LAYERS_SAMPLES) * next(iter(inputs.values())).shape[0]
             * neuron_count(artifact.reference) <= AUTO_LAYERS_MAX)
    if sides is not None:
        ref, prog, got = sides
    else:
        ref = reference_trace(artifact, inputs, probes=bool(g.layers))  # probed again on failure when small
        got = be.emulator().run(artifact, inputs, probes=bool(g.layers))
        prog = None
    result.reference, result.board_trace = ref, got
    missing = sorted(set(ref.outputs) - set(got.outputs))
    if missing:
        result.checks.append(Check("outputs", False, f"emulator produced no data for output(s) {missing}"))
        return result
    bad = {k: (np.shape(got.outputs[k]), v.shape) for k, v in ref.outputs.items()
           if np.size(got.outputs[k]) != v.size}
    if bad:
        result.checks.append(Check("outputs", False, "emulator output shapes differ from the float model's "
                                   + ", ".join(f"'{k}': board {b}, float {r}" for k, (b, r) in bad.items())))
        return result
    n_out = sum(int(np.prod(v.shape[2:])) for v in ref.outputs.values())
    # labels make a classifier only when there is a choice to make: argmax over one neuron is always 0
    kind = "classifier" if n_out > 1 else "signal"
    layer_gates = g.resolved("signal")  # a hidden layer is a raw spike train, whatever the model's outputs are
    g = g.resolved(kind)
    result.gates = {"kind": kind, **g.to_dict()}
    if by_construction:
        result.checks.append(Check("forward", True, f"not evidence: {by_construction}"))
    else:
        _output_checks(artifact, ref, got, labels, g, kind, result, inputs)
    if not by_construction:  # no pass ran: the transformed graph is the float graph, the passes lost nothing
        if prog is None:
            prog = program_trace(artifact, inputs)
        _stage_checks(artifact, ref, prog or ref, got, labels, g, result)
    for w in warnings_of(artifact.meta):
        outs_ok = all(c.passed for c in result.checks if c.name.startswith(("output:", "agreement", "accuracy")))
        effect = "; ".join(c.detail for c in result.checks if c.name.startswith("output:"))
        result.checks.append(Check(f"semantic:{w.node}:{w.kind}", outs_ok,
                                   f"{w.detail} (magnitude {w.magnitude:g}); outputs "
                                   f"{'within' if outs_ok else 'BEYOND'} tolerance: {effect}"))
    for name, ok, detail in be.verify_extra_labelled(artifact, inputs, labels):
        result.checks.append(Check(name, ok, detail))
    if not by_construction and (g.layers or (g.layers is None and not result.passed and small)):
        _layer_check(artifact, be, inputs, ref, got, layer_gates, result)
    return result


def _output_checks(artifact: Artifact, ref: Trace, got: Trace, labels: np.ndarray | None, g: Gates, kind: str,
                   result: VerifyResult, inputs: dict[str, np.ndarray]) -> None:
    batch = ref.batch
    s_ref, s_got = scores(ref.outputs), scores({k: got.outputs[k] for k in ref.outputs})
    silent_ref, silent_got = not np.any(s_ref), not np.any(s_got)
    result.metrics["reference_output_total"] = float(np.abs(s_ref).sum())
    result.metrics["board_output_total"] = float(np.abs(s_got).sum())
    if (silent_ref or silent_got) and not g.allow_silent:
        side = "both sides" if silent_ref and silent_got else ("the reference" if silent_ref else "the board")
        result.checks.append(Check("activity", False,
                                   f"{side} produced no output activity; a silent comparison proves nothing "
                                   "(pass --allow-silent to accept)"))
    else:
        result.checks.append(Check("activity", True, "both sides produced output activity"))
    lat = {n: latency_of(artifact, n) for n in ref.outputs}
    per = compare_sides(artifact.reference, ref, got, g.timing_tolerance, lat)
    result.outputs = per
    for name, m in per.items():
        for key, val in m.items():
            result.metrics[f"{name}.{key}"] = val
        result.checks.append(_output_check(name, m, g))
    oc = argmax_outcomes(s_ref, s_got)
    decided = oc["agree"] + oc["disagree"]
    agreement = oc["agree"] / decided if decided > 0 else 1.0
    result.metrics["prediction_agreement"] = agreement
    result.metrics["argmax_agree"] = oc["agree"]
    result.metrics["argmax_tie"] = oc["tie"]
    result.metrics["argmax_disagree"] = oc["disagree"]
    steps = max(1, ref.timesteps)
    result.metrics["mean_abs_count_diff_per_step"] = float(np.abs(s_ref - s_got).mean() / steps)
    if kind == "classifier":
        detail = (f"predictions agree on {agreement:.1%} of {decided * batch:.0f} decided samples (min "
                  f"{g.min_agreement:.1%}); {oc['tie']:.1%} of {batch} samples are ties (counted apart)")
        ok = agreement >= g.min_agreement - 1e-12
        if not ok and g.conditioning:
            ok, note = _conditioning(artifact, inputs, s_ref, agreement, result)
            detail += note
        result.checks.append(Check("agreement", ok, detail))
    if labels is not None:
        acc_ref, acc_got = expected_accuracy(s_ref, labels), expected_accuracy(s_got, labels)
        result.metrics["accuracy_reference"] = acc_ref
        result.metrics["accuracy_board"] = acc_got
        drop = acc_ref - acc_got
        coarse = (f"; one sample is {100 / batch:.2f} points, coarser than the gate: verify on more samples"
                  if 1.0 / batch > g.max_accuracy_drop + 1e-12 else "")
        result.checks.append(Check("accuracy", drop <= g.max_accuracy_drop + 1e-12,
                                   f"accuracy float {acc_ref:.2%} vs board {acc_got:.2%} "
                                   f"(drop {drop * 100:+.2f} points, max {g.max_accuracy_drop * 100:.2f}){coarse}"))


def _conditioning(artifact: Artifact, inputs: dict[str, np.ndarray], s_ref: np.ndarray, agreement: float,
                  result: VerifyResult) -> tuple[bool, str]:
    """A failed agreement, judged against the float model's own spread under the board's weight error."""
    from .conditioning import agreement_floor, weight_error

    mag = weight_error(artifact.meta)
    if mag is None:
        return False, "; the board records no weight quantisation, so no conditioning floor applies"
    floor = agreement_floor(artifact.reference, artifact.meta.get("dt"), inputs, s_ref, mag)
    result.metrics["conditioning.magnitude"] = floor.magnitude
    result.metrics["conditioning.worst_agreement"] = floor.worst
    result.metrics["conditioning.median_agreement"] = float(np.median(floor.agreements))
    ok = agreement >= floor.worst - 1e-12
    verdict = ("the board is within that spread: these inputs are ill-conditioned for argmax, the spike-level "
               "output checks decide" if ok else "the board is outside that spread")
    return ok, f"; {floor.text()}; {verdict}"


def _stage_checks(artifact: Artifact, ref: Trace, prog: Trace, got: Trace, labels: np.ndarray | None, g: Gates,
                  result: VerifyResult) -> None:
    """Split the float-vs-board gap into the passes' share and the board's share (informational check)."""
    lat = {n: latency_of(artifact, n) for n in ref.outputs}
    if prog is ref:  # no pass ran: nothing lost to passes, and the board's gap is the one already measured
        passes: dict[str, dict[str, float]] = {}
        board = result.outputs or compare_sides(artifact.reference, ref, got, g.timing_tolerance, lat, shift=False)
    else:
        passes = compare_sides(artifact.reference, ref, prog, g.timing_tolerance, shift=False)
        board = compare_sides(artifact.reference, prog, got, g.timing_tolerance, lat, shift=False)
    lp, lb = stage_loss(passes), stage_loss(board)
    result.metrics["stage.passes.loss"] = lp
    result.metrics["stage.board.loss"] = lb
    extra, basis = "", "spike mismatch"
    main, share = attribute_stages(lp, lb)
    if labels is not None:
        acc = [expected_accuracy(scores(t.outputs), labels) for t in (ref, prog, got)]
        dp, db = acc[0] - acc[1], acc[1] - acc[2]
        result.metrics["stage.passes.accuracy_drop"] = dp
        result.metrics["stage.board.accuracy_drop"] = db
        extra = f"; accuracy float {acc[0]:.2%} -> after passes {acc[1]:.2%} -> board {acc[2]:.2%}"
        if max(dp, db) > 0:  # with labels, the loss users care about decides
            main, share = attribute_stages(max(dp, 0.0), max(db, 0.0))
            basis = "accuracy drop"
    if artifact.program is None:
        extra += "; no pass ran (no transformed graph)"
    result.metrics["stage.main"] = {"none": 0.0, "passes": 1.0, "board": 2.0}[main]
    what = "no loss at either stage" if main == "none" else f"main source of loss: {main} ({share:.0%} of the {basis})"
    result.checks.append(Check("attribution:stage", True,
                               f"{what}; spike mismatch float->passes {lp:.1%}, passes->board {lb:.1%}{extra}"))


def _layer_check(artifact: Artifact, be, inputs: dict[str, np.ndarray], ref: Trace, got: Trace, g: Gates,
                 result: VerifyResult) -> None:
    if g.layers:  # asked for: both sides already ran with probes on every sample
        board_states, ref_states = got.states, ref.states
    else:  # automatic after a failure: a diagnosis on the first samples is enough, and cheaper
        few = {k: v[:, :AUTO_LAYERS_SAMPLES] for k, v in inputs.items()}
        board_states = be.emulator().run(artifact, few, probes=True).states
        ref_states = reference_trace(artifact, few, probes=True).states
    tau = min((output_kind(artifact.reference, n)[1] for n in ref.outputs), default=DEFAULT_TAU_STEPS)
    rep = attribute_layers(artifact.reference, ref_states, board_states, g, tau)
    result.layers = rep.layers
    for row in rep.layers:
        for key in ("count_error_rel", "spike_match", "step_identity"):
            result.metrics[f"layer.{row['node']}.{key}"] = row[key]
    if not rep.available:
        detail = rep.note
    elif rep.first_divergent is None:
        detail = f"no hidden layer diverges beyond the gates ({len(rep.layers)} compared)"
    else:
        detail = describe_layer(rep.first_divergent)
    if rep.note and rep.available:
        detail += f"; {rep.note}"
    # a diagnosis, not a gate: the output checks already decide pass/fail
    result.checks.append(Check("attribution:layer", True, detail))


def junit_xml(result: VerifyResult, suite: str = "spikeforge.verify") -> str:
    """One testcase per check (output checks are named `output:<node>`, one per Output node)."""
    fails = sum(not c.passed for c in result.checks)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<testsuite name="{escape(suite)}" tests="{len(result.checks)}" failures="{fails}" errors="0">',
    ]
    for c in result.checks:
        lines.append(f'  <testcase classname="{escape(suite)}.{escape(result.board)}" name="{escape(c.name)}">')
        if not c.passed:
            lines.append(f'    <failure message="{escape(c.detail, {chr(34): "&quot;"})}"/>')
        lines.append(f"    <system-out>{escape(c.detail)}</system-out>")
        lines.append("  </testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines) + "\n"
