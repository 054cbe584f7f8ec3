"""The lowered SpiNNaker program: PyNN populations and projections plus the raw on-core values.

A `Program` is what the emulator runs, what `emit.py` writes as a PyNN script and what `mapping.py`
places on chips. It round-trips through an artifact's `arrays` (numbers) and `meta` (structure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

RECEPTORS = ("excitatory", "inhibitory")

#: per-neuron raw (on-core) arrays every neuron population carries
RAW_KEYS = ("v_init", "v_rest", "v_reset", "v_thresh", "exp_tc", "r_mem", "i_offset", "t_refract",
            "exc_decay", "exc_init", "inh_decay", "inh_init")
#: per-neuron PyNN parameters written into the script (floats, PyNN units: mV, ms, nF, nA)
PYNN_KEYS = ("v_rest", "v_reset", "v_thresh", "tau_m", "cm", "tau_refrac", "i_offset", "tau_syn_E", "tau_syn_I",
             "v_init")


@dataclass
class Population:
    name: str                       # PyNN label (sanitised NIR node name)
    node: str                       # NIR node it came from
    kind: str                       # "SpikeSourceArray" | "IF_curr_exp" | "IF_curr_delta"
    size: int
    shape: tuple[int, ...]
    spiking: bool = True            # False: non-spiking readout (threshold never reached, V recorded)
    pynn: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    shifts: tuple[int, int] = (0, 0)  # ring-buffer -> input left shift per receptor (exc, inh)
    v_scale: float = 1.0            # core voltage = model voltage x v_scale (IF populations, for s16.15 headroom)

    @property
    def is_source(self) -> bool:
        return self.kind == "SpikeSourceArray"


@dataclass
class Projection:
    name: str
    pre: str
    post: str
    receptor: str                   # "excitatory" | "inhibitory"
    pre_idx: np.ndarray             # int32 (n_syn,)
    post_idx: np.ndarray            # int32
    weight: np.ndarray              # float64 PyNN weight (nA; negative for inhibitory)
    delay: np.ndarray               # int32 delay in time steps (>= 1)
    w_int: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # 16-bit ring-buffer weight
    via: tuple[str, ...] = ()       # NIR nodes composed into this projection


@dataclass
class Readout:
    """How an NIR Output node is read from the program."""

    output: str
    population: str
    variable: str                   # "spikes" | "v"


@dataclass
class Program:
    dt_ms: float
    populations: list[Population]
    projections: list[Projection]
    readouts: list[Readout]
    inputs: dict[str, str]          # NIR Input node -> population name
    report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    latency: dict[str, int] = field(default_factory=dict)   # population -> steps behind the reference
    semantic: list[dict[str, Any]] = field(default_factory=list)  # spikeforge.semantics records (not serialised)

    def pop(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    # ---- artifact round-trip -----------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for p in self.populations:
            for k, v in p.raw.items():
                out[f"pop/{p.name}/raw/{k}"] = np.asarray(v)
            for k, v in p.pynn.items():
                out[f"pop/{p.name}/pynn/{k}"] = np.asarray(v)
        for i, pr in enumerate(self.projections):
            for k in ("pre_idx", "post_idx", "weight", "delay", "w_int"):
                out[f"proj/{i:04d}/{k}"] = np.asarray(getattr(pr, k))
        return out

    def to_meta(self) -> dict[str, Any]:
        return {
            "dt_ms": self.dt_ms,
            "populations": [
                {"name": p.name, "node": p.node, "kind": p.kind, "size": p.size, "shape": list(p.shape),
                 "spiking": p.spiking, "shifts": list(p.shifts),
                 "v_scale": p.v_scale} for p in self.populations
            ],
            "projections": [
                {"name": pr.name, "pre": pr.pre, "post": pr.post, "receptor": pr.receptor, "via": list(pr.via)}
                for pr in self.projections
            ],
            "readouts": [{"output": r.output, "population": r.population, "variable": r.variable}
                         for r in self.readouts],
            "inputs": dict(self.inputs),
            "latency": dict(self.latency),
        }

    @classmethod
    def from_artifact(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Program:
        m = meta["program"]
        pops = []
        for d in m["populations"]:
            pre = f"pop/{d['name']}/"
            raw = {k[len(pre) + 4:]: v for k, v in arrays.items() if k.startswith(pre + "raw/")}
            pyn = {k[len(pre) + 5:]: v for k, v in arrays.items() if k.startswith(pre + "pynn/")}
            pops.append(Population(d["name"], d["node"], d["kind"], int(d["size"]), tuple(d["shape"]),
                                   bool(d["spiking"]), pyn, raw, tuple(d["shifts"]),
                                   float(d.get("v_scale", 1.0))))
        projs = []
        for i, d in enumerate(m["projections"]):
            a = {k: arrays[f"proj/{i:04d}/{k}"] for k in ("pre_idx", "post_idx", "weight", "delay", "w_int")}
            projs.append(Projection(d["name"], d["pre"], d["post"], d["receptor"], a["pre_idx"], a["post_idx"],
                                    a["weight"], a["delay"], a["w_int"], tuple(d["via"])))
        reads = [Readout(r["output"], r["population"], r["variable"]) for r in m["readouts"]]
        return cls(float(m["dt_ms"]), pops, projs, reads, dict(m["inputs"]),
                   report=meta.get("quantisation", {}), warnings=list(meta.get("warnings", [])),
                   latency={k: int(v) for k, v in m.get("latency", {}).items()})
