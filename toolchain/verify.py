"""`verify`: does the compiled program behave like the float model?

Both sides run on the same inputs: the reference simulator on the artifact's float graph, the board's
emulator on the program. Outputs are reduced to per-sample class scores (sum over time of each output
neuron: spike counts for spiking outputs, summed values otherwise) and compared: prediction agreement,
accuracy against labels when given, and the mean absolute difference of output counts. A verification
that compares nothing (no samples, or no output activity on either side) fails unless allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np

from .artifact import Artifact
from .interfaces import Trace


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
            "metrics": self.metrics,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
        }


def scores(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """(B, classes) scores: outputs summed over time, all Output nodes concatenated."""
    parts = [np.asarray(v, dtype=np.float64).sum(axis=0).reshape(v.shape[1], -1) for _, v in sorted(outputs.items())]
    return np.concatenate(parts, axis=1)


def reference_trace(artifact: Artifact, inputs: dict[str, np.ndarray]) -> Trace:
    """The float model's behaviour: what every board is compared against."""
    from spikeforge.emulators.reference import simulate_trace

    return simulate_trace(artifact.reference, artifact.meta.get("dt"), inputs)


def verify(artifact: Artifact, inputs: dict[str, np.ndarray], labels: np.ndarray | None = None, *,
           backend=None, max_accuracy_drop: float = 0.01, min_agreement: float = 0.9,
           allow_silent: bool = False) -> VerifyResult:
    from .registry import get_backend

    be = backend or get_backend(artifact.backend)
    result = VerifyResult(board=artifact.board)
    batch = next(iter(inputs.values())).shape[1] if inputs else 0
    result.metrics["samples"] = float(batch)
    if batch == 0:
        result.checks.append(Check("samples", False, "no samples to compare (batch size 0)"))
        return result
    ref = reference_trace(artifact, inputs)
    got = be.emulator().run(artifact, inputs)
    result.reference, result.board_trace = ref, got
    missing = sorted(set(ref.outputs) - set(got.outputs))
    if missing:
        result.checks.append(Check("outputs", False, f"emulator produced no data for output(s) {missing}"))
        return result
    s_ref, s_got = scores(ref.outputs), scores({k: got.outputs[k] for k in ref.outputs})
    silent_ref, silent_got = not np.any(s_ref), not np.any(s_got)
    result.metrics["reference_output_total"] = float(np.abs(s_ref).sum())
    result.metrics["board_output_total"] = float(np.abs(s_got).sum())
    if (silent_ref or silent_got) and not allow_silent:
        side = "both sides" if silent_ref and silent_got else ("the reference" if silent_ref else "the board")
        result.checks.append(Check("activity", False,
                                   f"{side} produced no output activity; a silent comparison proves nothing "
                                   "(pass --allow-silent to accept)"))
    else:
        result.checks.append(Check("activity", True, "both sides produced output activity"))
    p_ref, p_got = s_ref.argmax(1), s_got.argmax(1)
    agreement = float((p_ref == p_got).mean())
    result.metrics["prediction_agreement"] = agreement
    steps = max(1, ref.timesteps)
    result.metrics["mean_abs_count_diff_per_step"] = float(np.abs(s_ref - s_got).mean() / steps)
    result.checks.append(Check("agreement", agreement >= min_agreement,
                               f"predictions agree on {agreement:.1%} of {batch} samples (min {min_agreement:.1%})"))
    if labels is not None:
        acc_ref = float((p_ref == labels).mean())
        acc_got = float((p_got == labels).mean())
        result.metrics["accuracy_reference"] = acc_ref
        result.metrics["accuracy_board"] = acc_got
        drop = acc_ref - acc_got
        result.checks.append(Check("accuracy", drop <= max_accuracy_drop + 1e-12,
                                   f"accuracy float {acc_ref:.2%} vs board {acc_got:.2%} "
                                   f"(drop {drop * 100:+.2f} points, max {max_accuracy_drop * 100:.2f})"))
    for name, ok, detail in be.verify_extra(artifact, inputs):
        result.checks.append(Check(name, ok, detail))
    return result


def junit_xml(result: VerifyResult, suite: str = "spikeforge.verify") -> str:
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
