"""Semantic warnings: a lowering that changes the model's dynamics says so, in a structured record.

Why: "no silent semantic change". A leak rounded to zero, a reset mode replaced, a bias moved, a
delay clamped or a saturating accumulator must be (a) recorded in the artifact with the node and the
size of the change, (b) printed once by compile, and (c) gated by verify. Backends call `record`;
the artifact keeps the list under ``meta["semantic_warnings"]``; compile prints each once; verify
turns each into a check that fails when the outputs diverge beyond tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: the kinds of change a lowering can make
KINDS = (
    "leak_rounded",      # a decay/leak that the chip's arithmetic rounds (to 0, to 1, or by a measurable amount)
    "reset_changed",     # reset mode (subtract / zero / to value) replaced by another
    "bias_moved",        # a bias applied to another state variable or at another time
    "delay_clamped",     # a synaptic delay clamped or rounded
    "saturation",        # a weight, state or accumulator saturates
    "integration",       # the integration rule (Euler / exact / order of updates) differs
    "quantisation",      # a parameter rounded beyond the stated precision
    "other",
)


@dataclass(frozen=True)
class SemanticWarning:
    node: str
    kind: str
    detail: str
    magnitude: float = 0.0     # size of the change in the units `detail` names (relative where possible)
    measure: str = ""          # what `magnitude` is, where a consumer needs it: WEIGHT_REL_RMS, ...

    def text(self) -> str:
        return f"node '{self.node}': {self.kind}: {self.detail}"


#: `measure` of a weight quantisation whose magnitude is ||W_board - W|| / ||W|| (verify's conditioning floor
#: perturbs the float weights by that much)
WEIGHT_REL_RMS = "weight_rel_rms"


def record(meta: dict[str, Any], node: str, kind: str, detail: str, magnitude: float = 0.0,
           measure: str = "") -> SemanticWarning:
    """Append a structured warning to an artifact's meta (deduplicated) and return it."""
    if kind not in KINDS:
        raise ValueError(f"unknown semantic warning kind {kind!r}")
    w = SemanticWarning(str(node), kind, str(detail), float(magnitude), str(measure))
    lst = meta.setdefault("semantic_warnings", [])
    d = asdict(w)
    if d not in lst:
        lst.append(d)
    return w


def warnings_of(meta: dict[str, Any]) -> list[SemanticWarning]:
    return [SemanticWarning(**d) for d in meta.get("semantic_warnings", []) or []]
