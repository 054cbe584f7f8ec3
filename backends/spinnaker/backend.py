"""The SpiNNaker backend: NIR -> sPyNNaker populations/projections, mapping, PyNN script, emulator, cost."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import nir
import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.reference.backend import with_dt
from spikeforge.boardspec import Board
from spikeforge.errors import UnsupportedError
from spikeforge.interfaces import Backend, CompileOptions, CostModel, Emulator
from spikeforge.options import validate_options

from .budget import estimate_tsf
from .cost import SpiNNakerCostModel
from .emit import emit_files
from .lower import lower_graph
from .mapping import map_program
from .options import OPTIONS
from .program import Program


class SpiNNakerBackend(Backend):
    name = "spinnaker"
    options = OPTIONS
    #: sPyNNaker's IF_curr_exp/IF_curr_delta reset V to v_reset
    ann_reset = "zero"

    def lower(self, graph: nir.NIRGraph, board: Board, options: CompileOptions) -> Artifact:
        # the spinnaker.* keys are checked here too, so a direct API call gets the same refusal as the CLI
        ours = {k: v for k, v in (options.extra or {}).items() if k.startswith("spinnaker.")}
        options = replace(options, extra={**options.extra, **validate_options(self.name, OPTIONS, ours)})
        g, dt = with_dt(graph, options)
        prog = lower_graph(g, dt, options)
        mapping = map_program(prog, board, options.extra)
        meta: dict[str, Any] = {
            "dt": dt,
            "dt_ms": prog.dt_ms,
            "program": prog.to_meta(),
            "mapping": mapping,
            "quantisation": prog.report,
            "warnings": list(prog.warnings),
            "neurons": int(sum(p.size for p in prog.populations if not p.is_source)),
            "synapses": int(sum(pr.weight.size for pr in prog.projections)),
            "semantic_warnings": list(prog.semantic),
            **latency_meta(prog),
        }
        tsf = options.extra.get("spinnaker.time_scale_factor")
        if tsf is not None:
            tsf = float(tsf)
            if not tsf >= 1.0:
                raise UnsupportedError(f"extra 'spinnaker.time_scale_factor' must be >= 1 (got {tsf})")
        auto = prog.report.setdefault("automatic", {})
        if tsf is None:
            # sPyNNaker's default slows sub-millisecond steps; raise it where the cycle model predicts overruns
            # an overrun drops packets silently, so the timing plan assumes a higher rate (100 Hz, assumed) than
            # the ring-buffer bound (30 Hz): `--set spinnaker.tsf_rate_hz=R` changes it
            est = estimate_tsf(prog, mapping, board, float(options.extra.get("spinnaker.tsf_rate_hz", 100.0)))
            calib = getattr(prog, "calibration", None)
            if calib:
                # calibration data given: emulate it and plan for its worst core with the calibration margin
                # (the same factor the ring-buffer bounds use, 1.25 by default): a step that overruns drops
                # packets, and the worst step of other data from the same distribution lies above the worst
                # step of 16 calibration samples (cnn_sinabs on random 2-5 % frames: +23 %, measured)
                from spikeforge.emulators.spinnaker import simulate as emulate

                margin = float(options.extra.get("spinnaker.calibration_margin", 1.25))
                cores = emulate(prog, calib, mapping=mapping, board=board).meta["cores"]
                need = math.ceil(cores["max_cycles"] * margin / est["budget_cycles"] * 10 - 1e-9) / 10
                est = {**est, "time_scale_factor": max(1.0, need), "peak_cycles": cores["max_cycles"] * margin,
                       "worst_core": max(cores["per_core"], key=lambda c: c["max_cycles"], default={}),
                       "why": f"worst core emulated on the calibration data x {margin:g} (spinnaker.calibration_margin)"}
                est["worst_core"] = {"population": est["worst_core"].get("population"),
                                     "slice": est["worst_core"].get("slice")}
            default = spynnaker_default_tsf(prog.dt_ms)
            tsf = max(default, est["time_scale_factor"])
            auto["time_scale_factor"] = {**est, "spynnaker_default": default, "chosen": tsf}
        else:
            auto["time_scale_factor"] = {"chosen": tsf, "why": "spinnaker.time_scale_factor (user)"}
        meta["time_scale_factor"] = tsf
        meta["summary"] = summarise_auto(prog.report)
        return Artifact(board=board.name, backend=self.name, reference=g, arrays=prog.to_arrays(), meta=meta,
                        files=emit_files(prog, tsf), options=options)

    def emulator(self) -> Emulator:
        from spikeforge.emulators.spinnaker import SpiNNakerEmulator

        return SpiNNakerEmulator()

    def cost_model(self) -> CostModel:
        return SpiNNakerCostModel()

    def verify_extra(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> list[tuple[str, bool, str]]:
        from spikeforge.emulators.spinnaker import cached_or_run

        prog = Program.from_artifact(artifact.meta, artifact.arrays)
        tr = cached_or_run(artifact, inputs)
        m = artifact.meta.get("mapping", {})
        routing = m.get("routing", {})
        cores = tr.meta.get("cores", {})
        default_tsf = float(artifact.meta.get("time_scale_factor") or spynnaker_default_tsf(prog.dt_ms))
        zero_all = [w for w in artifact.meta.get("warnings", []) if "VANISHES" in w]
        return [
            ("routing_tables_fit", routing.get("max_entries", 0) <= routing.get("limit", 1023),
             f"max {routing.get('max_entries', 0)} entries per chip of {routing.get('limit', 1023)}"),
            ("ring_buffer_no_saturation", tr.meta.get("saturations_total", 0) == 0,
             f"{tr.meta.get('saturations_total', 0):.0f} saturated ring-buffer cells"),
            # sPyNNaker slows sub-millisecond steps by default (time_scale_factor = ceil(1 ms / dt)); a model
            # fails here only if it needs more than that, i.e. would report Times_the_timer_tic_over_ran
            ("tick_budget", cores.get("time_scale_factor", 1.0) <= default_tsf,
             f"worst core {cores.get('max_cycles', 0):.0f} cycles per step of {prog.dt_ms} ms "
             f"({cores.get('overruns', 0)} core-steps over budget at real time): needs time_scale_factor "
             f"{cores.get('time_scale_factor', 1.0)}, the program runs with {default_tsf}"
             + ("" if cores.get("time_scale_factor", 1.0) <= default_tsf else
                f" (recompile with --set spinnaker.time_scale_factor={cores.get('time_scale_factor', 1.0)})")),
            ("no_vanished_weight_class", not zero_all, "; ".join(zero_all) or "every projection keeps weights"),
        ]


def latency_meta(prog: Program) -> dict[str, Any]:
    """latency_steps (outputs vs the float reference), per output and per NIR node, and the layer map."""
    by_out = {r.output: int(prog.latency.get(r.population, 0)) for r in prog.readouts}
    common = max(by_out.values(), default=0)
    out: dict[str, Any] = {
        "latency_steps": common,
        "latency_steps_by_node": {p.node: int(prog.latency.get(p.name, 0)) for p in prog.populations
                                  if not p.is_source},
        "layer_map": {p.node: p.name for p in prog.populations},
    }
    if any(v != common for v in by_out.values()):
        out["latency_steps_by_output"] = by_out
    return out


def spynnaker_default_tsf(dt_ms: float) -> float:
    """sPyNNaker slows sub-millisecond steps by default: time_scale_factor = ceil(1 ms / dt), at least 1."""
    return float(max(1, math.ceil(1.0 / dt_ms - 1e-9)))


def summarise_auto(report: dict[str, Any]) -> dict[str, Any]:
    """The automatic choices in one short dict (shown by `spikeforge inspect`)."""
    out: dict[str, Any] = {}
    for name, d in report.get("populations", {}).items():
        out[f"ring_buffer.{name}"] = (f"policy {d.get('policy')}, shifts exc {d['shift_exc']} / inh {d['shift_inh']}")
    for name, d in report.get("automatic", {}).get("if_neurons", {}).items():
        out[f"if_leak.{name}"] = (f"tau_m {d['tau_m_ms']:.1f} ms (leak {d['leak_per_step']:.2e}/step; {d['why']}), "
                                  f"voltage scale {d['v_scale']:g}, rounding offset {d['i_offset_rounding_raw']} raw")
    t = report.get("automatic", {}).get("time_scale_factor")
    if t:
        out["time_scale_factor"] = (f"{t['chosen']:g} ({t['why']}"
                                    + (f"; worst core {t['worst_core'].get('population')}"
                                       f"[{t['worst_core'].get('slice')}] {t['peak_cycles']:.0f} of "
                                       f"{t['budget_cycles']:.0f} cycles" if "peak_cycles" in t else "") + ")")
    return out
