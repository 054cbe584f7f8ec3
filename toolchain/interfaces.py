"""Plug-in interfaces: every board backend implements these three roles.

    Backend.lower(graph, board, options) -> Artifact        (compile: NIR -> chip program)
    Emulator.run(artifact, inputs)        -> Trace           (execute the chip program, bit-accurately)
    CostModel.profile(artifact, trace)    -> Profile         (energy / latency from event counts)

Backends register under the `spikeforge.backends` entry-point group (see `registry.py`).
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .options import Opt

if TYPE_CHECKING:  # pragma: no cover
    import nir

    from .artifact import Artifact
    from .boardspec import Board


@dataclass
class CompileOptions:
    """What the user asked for on `spikeforge compile`; backends read what applies to them."""

    dt: float | None = None
    timesteps: int | None = None
    bit_budget: float | None = None
    prune: float | None = None
    delay_policy: str = "auto"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CompileOptions:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


#: Names of per-step event counters. Emulators fill what applies; cost models read them.
EVENT_KEYS = (
    "synops",            # synaptic operations (one weight applied to one incoming event)
    "neuron_updates",    # neuron state updates (all neurons, every step)
    "active_updates",    # neuron updates of neurons that received input or were non-zero
    "spikes",            # spikes emitted
    "packets",           # messages crossing cores / chips
    "macs",              # dense multiply-accumulates (graded inputs)
)


@dataclass
class Trace:
    """What an emulator run produced.

    outputs: Output-node name -> array (T, B, *shape) of output events / values.
    counts:  event name -> array (T,) summed over batch (see EVENT_KEYS; backends may add their own).
    states:  optional probes, 'node.var' -> array (T, B, *shape).
    layer_counts: optional 'node' -> {event -> total over the run} for per-layer reports.
    meta:    free-form run facts (batch size, dt, warnings) kept with the trace.

    Conventions every emulator follows (verify relies on them):
    * ``artifact.meta["latency_steps"]`` (int, default 0): steps by which the board's Output traces lag
      the float reference (pipeline latency; Loihi adds one per hop). A per-output override may be given
      as ``artifact.meta["latency_steps_by_output"] = {output_name: k}``. verify aligns by it.
    * With ``probes=True``, hidden layers are reported under the NIR node names of ``artifact.reference``:
      ``states["<node>.s"]`` spikes (T, B, *node_shape) for every spiking neuron node, and where the chip
      has them ``"<node>.v"`` / ``"<node>.i"`` in the reference's float units (the emulator rescales its
      fixed-point state). ``artifact.meta["layer_map"] = {nir_node: internal population name}`` records
      how board populations map back to NIR nodes.
    * Structured semantic warnings live in ``artifact.meta["semantic_warnings"]`` (see `semantics.py`).
    """

    outputs: dict[str, np.ndarray]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    states: dict[str, np.ndarray] = field(default_factory=dict)
    layer_counts: dict[str, dict[str, float]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # arrays summarised: a notebook cell should not print megabytes
        outs = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.outputs.items())
        counts = ", ".join(f"{k} {float(np.sum(v)):,.0f}" for k, v in self.counts.items())
        return f"Trace(outputs: {outs}; totals: {counts or 'none'}; {len(self.states)} probes)"

    @property
    def timesteps(self) -> int:
        first = next(iter(self.outputs.values()))
        return int(first.shape[0])

    @property
    def batch(self) -> int:
        first = next(iter(self.outputs.values()))
        return int(first.shape[1])

    def total(self, key: str) -> float:
        return float(np.sum(self.counts[key])) if key in self.counts else 0.0

    @classmethod
    def concat(cls, parts: list[Trace]) -> Trace:
        """Join traces of consecutive batch slices: outputs and probes along the batch axis, per-step and
        per-layer event counts summed. Exact when each sample's run is independent of the others."""
        first = parts[0]
        layer: dict[str, dict[str, float]] = {}
        for p in parts:
            for n, d in p.layer_counts.items():
                for k, v in d.items():
                    layer.setdefault(n, {})[k] = layer.get(n, {}).get(k, 0.0) + float(v)
        return cls(
            outputs={k: np.concatenate([p.outputs[k] for p in parts], axis=1) for k in first.outputs},
            counts={k: np.sum([np.asarray(p.counts[k]) for p in parts], axis=0) for k in first.counts},
            states={k: np.concatenate([p.states[k] for p in parts], axis=1) for k in first.states},
            layer_counts=layer,
            meta={**first.meta, "batch": sum(p.batch for p in parts)},
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f"output/{k}": v for k, v in self.outputs.items()}
        out.update({f"count/{k}": np.asarray(v) for k, v in self.counts.items()})
        out.update({f"state/{k}": v for k, v in self.states.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Trace:
        t = cls(outputs={})
        for k, v in arrays.items():
            kind, _, name = k.partition("/")
            {"output": t.outputs, "count": t.counts, "state": t.states}.get(kind, {})[name] = v
        return t


@dataclass
class ProfileItem:
    """One figure of a profile and how it was obtained."""

    component: str
    value: float
    unit: str
    formula: str
    sources: list[str] = field(default_factory=list)


@dataclass
class Profile:
    """Energy and latency of one run, each figure traceable to board constants.

    Energy items are joules PER INFERENCE (one sample, averaged over the batch the trace holds);
    latency items are seconds, with components named "per_step" and "per_inference" at least.
    """

    board: str
    energy: list[ProfileItem] = field(default_factory=list)       # J, by component (per inference)
    latency: list[ProfileItem] = field(default_factory=list)      # s
    resources: list[ProfileItem] = field(default_factory=list)    # cores, chips, tiles, frames ...
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        from .display import profile_text

        return profile_text(self)

    def _repr_html_(self) -> str:
        from .display import profile_html

        return profile_html(self)

    @property
    def energy_total(self) -> float:
        return float(sum(i.value for i in self.energy))

    def latency_of(self, component: str) -> float | None:
        for i in self.latency:
            if i.component == component:
                return i.value
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["energy_total_J"] = self.energy_total
        return d


class Emulator(abc.ABC):
    """Runs a lowered program as the chip would."""

    #: True when each sample's result depends on that sample alone (no shared random stream, no state
    #: carried between samples): a sweep may then split a large input set across workers and merge the
    #: traces exactly. Stochastic emulators (device noise drawn per run) keep the default.
    samples_independent: bool = False

    def merge(self, parts: list[Trace]) -> Trace:
        """Join the traces of consecutive batch slices as one run on the whole batch would report them.
        The default joins outputs, probes and event counts (`Trace.concat`); an emulator whose trace meta
        carries batch-dependent figures overrides this."""
        return Trace.concat(parts)

    @abc.abstractmethod
    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray], *, probes: bool = False) -> Trace:
        """inputs: Input-node name -> array (T, B, *shape)."""


class CostModel(abc.ABC):
    @abc.abstractmethod
    def profile(self, artifact: Artifact, trace: Trace) -> Profile: ...


class Backend(abc.ABC):
    """A board family: lowering, its emulator and its cost model."""

    #: entry-point name; boards name it in their `backend` key
    name: str = ""
    #: the `--set` keys this backend reads (backends/<name>/options.py); compile rejects any other key
    options: dict[str, Opt] = {}
    #: the reset an ANN-to-SNN conversion targets for this board ("subtract", or "zero" where the chip's
    #: neurons can only reset to zero): its IF neurons then run exactly (frontends/convert.py)
    ann_reset: str = "subtract"

    @abc.abstractmethod
    def lower(self, graph: nir.NIRGraph, board: Board, options: CompileOptions) -> Artifact:
        """Compile a validated float NIR graph for `board`. Raise FitError/UnsupportedError with reasons."""

    @abc.abstractmethod
    def emulator(self) -> Emulator: ...

    @abc.abstractmethod
    def cost_model(self) -> CostModel: ...

    def verify_extra(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> list[tuple[str, bool, str]]:
        """Backend-specific checks for `verify` beyond output agreement: (name, passed, detail)."""
        return []

    def verify_extra_labelled(self, artifact: Artifact, inputs: dict[str, np.ndarray],
                              labels: np.ndarray | None) -> list[tuple[str, bool, str]]:
        """verify_extra with the user's labels (None when not given); what `verify` calls. Backends whose
        checks use labels (the photonic one trains on them) override this; the others keep verify_extra."""
        return self.verify_extra(artifact, inputs)
