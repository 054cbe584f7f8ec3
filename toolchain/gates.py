"""verify's thresholds: what "the board behaves like the float model" means, per kind of model.

Why two kinds: argmax agreement is meaningful only for a classifier (labels given, or several output
neurons). A single-output, regression or raw-spike-train model is judged on its spike trains (count
error, spikes matched within +-k steps) or, for analog outputs, on normalised RMS error. Classifiers
are judged on agreement and accuracy, plus a looser spike-count gate so a board whose trains are
visibly wrong (twice the spikes, or silence) fails even when argmax happens to survive.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import SpikeforgeError

#: per-kind defaults for the gates left unset (None) by the user
DEFAULTS: dict[str, dict[str, float]] = {
    # A classifier decides on counts: its spike gate catches gross faults (silence, doubled or halved trains)
    # and leaves timing to --min-spike-match. Measured: digits_mlp on loihi2/spinn5 has 43-50 % per-neuron
    # count error with 100 % agreement, and cnn_sinabs on spinn5 moves spikes by ~5 steps (one step per
    # hop, not declared as latency_steps yet) with 100 % agreement.
    "classifier": {"max_count_error": 0.75, "min_spike_match": 0.0, "max_analog_error": 0.25},
    "signal": {"max_count_error": 0.1, "min_spike_match": 0.9, "max_analog_error": 0.05},
}


@dataclass(frozen=True)
class Gates:
    """Thresholds; None means "the default for this kind of model" (see DEFAULTS)."""

    max_accuracy_drop: float = 0.01      # fraction (0.01 = 1 point), with labels
    min_agreement: float = 0.9           # argmax agreement over samples without a tie, classifiers
    max_count_error: float | None = None  # relative spike-count error per output (|count diff| / reference count)
    min_spike_match: float | None = None  # fraction of spikes matched one-to-one within +-timing_tolerance
    timing_tolerance: int = 1            # k steps, after latency alignment
    max_analog_error: float | None = None  # RMS error / reference output range, analog outputs
    allow_silent: bool = False
    layers: bool | None = None           # True: always attribute by layer; None: on failure for small runs
    conditioning: bool = True            # a failed agreement is judged against the float model's own spread
    #                                      under a same-size weight perturbation (conditioning.py)

    def __post_init__(self) -> None:
        for name in ("max_accuracy_drop", "max_count_error", "max_analog_error"):
            v = getattr(self, name)
            if v is not None and not (v >= 0):
                raise SpikeforgeError(f"{name} must be >= 0, got {v}", field=name)
        for name in ("min_agreement", "min_spike_match"):
            v = getattr(self, name)
            if v is not None and not (0 <= v <= 1):
                raise SpikeforgeError(f"{name} must be in [0, 1], got {v}", field=name)
        if not (0 <= int(self.timing_tolerance) <= 1000):
            raise SpikeforgeError(f"timing_tolerance must be in [0, 1000] steps, got {self.timing_tolerance}",
                                  field="timing_tolerance")

    def resolved(self, kind: str) -> Gates:
        """These gates with every None replaced by the default of `kind` ("classifier" or "signal")."""
        d = DEFAULTS[kind]
        return replace(self, **{k: v for k, v in d.items() if getattr(self, k) is None})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "") -> Gates:
        """Gates from a mapping (a TOML table or keyword arguments); unknown keys and wrong types are errors."""
        known = {f.name: f for f in fields(cls)}
        kw: dict[str, Any] = {}
        for key, value in data.items():
            name = key.replace("-", "_")
            if name == "tolerance":
                name = "max_accuracy_drop"
            if name not in known:
                raise SpikeforgeError(f"unknown verify setting '{key}'; valid: {', '.join(sorted(known))}",
                                      file=source or None, field=key)
            if name in ("allow_silent", "layers", "conditioning"):
                if not isinstance(value, bool):
                    raise SpikeforgeError(f"'{key}' must be true or false, got {value!r}", file=source or None,
                                          field=key)
            elif name == "timing_tolerance":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise SpikeforgeError(f"'{key}' must be an integer number of steps, got {value!r}",
                                          file=source or None, field=key)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpikeforgeError(f"'{key}' must be a number, got {value!r}", file=source or None, field=key)
            kw[name] = value
        return cls(**kw)
