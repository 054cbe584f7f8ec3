"""Reports written by the compiler passes: JSON-able dicts for tools, plain text for people."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float):
        return round(x, 9)
    return x


def _table(rows: list[dict[str, Any]], cols: list[str]) -> list[str]:
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return out


@dataclass
class LayerQuant:
    """What the quantiser chose for one weighted layer."""

    name: str
    weight_bits: int
    activation_bits: int
    synapses: int
    bitops_dense: float           # synapses x b_w x b_a x T, per sample
    bitops_event: float | None    # measured synaptic events x b_w x b_a, per sample
    scale_min: float
    scale_max: float
    zeroed_fraction: float        # non-zero float weights that became integer 0
    neuron: str | None = None


@dataclass
class QuantReport:
    bit_budget: float | None
    bits_spent: float
    timesteps: int
    mode: str
    per_channel: bool
    rounding: str
    allowed_weight_bits: list[int]
    allowed_activation_bits: list[int]
    layers: list[LayerQuant]
    predicted_error: dict[str, float | None]
    bitops_dense: float
    bitops_event: float | None
    divergence: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    board: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def to_text(self) -> str:
        lines = [
            f"quantisation: budget {self.bit_budget if self.bit_budget is not None else 'none'} "
            f"(bit budget = weight bits x activation bits x time steps, synapse-weighted mean over layers)",
            f"  spent {self.bits_spent:.4g} bits; T = {self.timesteps}; {self.mode}, "
            f"{'per-channel' if self.per_channel else 'per-tensor'}, rounding {self.rounding}"
            + (f"; board {self.board}" if self.board else ""),
            f"  bit operations per sample: dense {self.bitops_dense:.4g}"
            + (f", event-driven {self.bitops_event:.4g}" if self.bitops_event is not None else ""),
            "  predicted error: " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.predicted_error.items()),
            "",
            *("  " + s for s in _table([asdict(x) for x in self.layers],
                                        ["name", "weight_bits", "activation_bits", "synapses", "bitops_dense",
                                         "zeroed_fraction", "scale_min", "scale_max"])),
        ]
        if self.divergence:
            lines += ["", "  float vs integer, per layer (calibration data):"]
            cols = list(self.divergence[0].keys())
            lines += ["  " + s for s in _table(self.divergence, cols)]
        if self.warnings:
            lines += ["", *(f"  WARNING {w}" for w in self.warnings)]
        return "\n".join(lines)


@dataclass
class PruneReport:
    method: str
    sparsity_requested: float
    layers: list[dict[str, Any]]
    weights_before: int
    weights_after: int
    neurons_removed: dict[str, int]
    synops_before: float | None
    synops_after: float | None
    accuracy_before: float | None
    accuracy_after: float | None
    agreement: float | None
    warnings: list[str] = field(default_factory=list)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.weights_after / max(1, self.weights_before)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sparsity"] = self.sparsity
        return _jsonable(d)

    def to_text(self) -> str:
        lines = [
            f"pruning ({self.method}): requested {self.sparsity_requested:.3g}, achieved weight sparsity "
            f"{self.sparsity:.3g} ({self.weights_before} -> {self.weights_after} non-zero weights)",
        ]
        if self.synops_before is not None:
            red = 1 - (self.synops_after or 0) / max(self.synops_before, 1e-12)
            lines.append(f"  synaptic operations per sample {self.synops_before:.4g} -> {self.synops_after:.4g} "
                         f"({100 * red:.1f}% fewer)")
        if self.accuracy_before is not None:
            lines.append(f"  accuracy {self.accuracy_before:.4f} -> {self.accuracy_after:.4f}")
        if self.agreement is not None:
            lines.append(f"  agreement with the unpruned predictions {self.agreement:.4f}")
        if self.neurons_removed:
            lines.append("  neurons removed: " + ", ".join(f"{k} {v}" for k, v in self.neurons_removed.items()))
        lines += ["  " + s for s in _table(self.layers, list(self.layers[0].keys()))] if self.layers else []
        lines += [f"  WARNING {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class DelayReport:
    policy: str
    dt: float
    max_delay_steps: int
    synapses_with_delay: int
    relays_added: int
    relay_nodes: list[str]
    max_quantisation_error_s: float
    mean_quantisation_error_s: float
    delay_nodes_folded: list[str] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    def to_text(self) -> str:
        lines = [
            f"delays ({self.policy}): dt {self.dt:g} s, board range 0..{self.max_delay_steps} steps; "
            f"{self.synapses_with_delay} delayed synapses, {self.relays_added} relay neurons added",
            f"  quantisation error: max {self.max_quantisation_error_s:.3g} s, mean {self.mean_quantisation_error_s:.3g} s",
        ]
        if self.delay_nodes_folded:
            lines.append("  Delay nodes folded into synapses: " + ", ".join(self.delay_nodes_folded))
        if self.layers:
            lines += ["  " + s for s in _table(self.layers, list(self.layers[0].keys()))]
        if self.verification:
            lines.append("  verification against the float reference: " +
                         ", ".join(f"{k} {v}" for k, v in self.verification.items()))
        lines += [f"  WARNING {w}" for w in self.warnings]
        return "\n".join(lines)
