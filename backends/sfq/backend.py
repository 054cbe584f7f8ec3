"""SFQBackend: lower NIR to an SFQ netlist, check timing statically, emit netlist/JoSIM/report."""

from __future__ import annotations

import json
from dataclasses import replace

import nir
import numpy as np

from spikeforge.artifact import Artifact, dumps
from spikeforge.backends.reference.backend import with_dt
from spikeforge.boards import Board
from spikeforge.interfaces import Backend, CompileOptions, CostModel, Emulator
from spikeforge.options import validate_options
from spikeforge.passes.avgpool import avgpool_to_sumpool

from .cost import SFQCostModel
from .emit import cells_file, compile_figures, estimate_report, figures, josim_deck, report_text
from .estimate import check_budget, estimate
from .lower import lower_graph, plan_program
from .netlist import Netlist, library_from_board
from .options import OPTIONS
from .sta import analyse


class SFQBackend(Backend):
    name = "sfq"

    options = OPTIONS

    def lower(self, graph: nir.NIRGraph, board: Board, options: CompileOptions) -> Artifact:
        g, dt = with_dt(graph, options)
        given = {k: v for k, v in (options.extra or {}).items() if k.startswith("sfq.")}
        parsed = validate_options(self.name, OPTIONS, given)
        options = replace(options, extra={**(options.extra or {}), **parsed})
        extra = options.extra
        steps = int(options.timesteps or 1)
        # the fabric adds pulses: a mean pool becomes a sum pool, its 1/(kh*kw) folded into the next weights
        # (exact); verify still compares with `g`, the float model as given
        pg, pools = avgpool_to_sumpool(g)
        plan = plan_program(pg, dt, board, options)
        plan.notes.extend(f"AvgPool2d '{r['pool']}' -> SumPool2d, x{r['scale']:g} folded into '{r['into']}' (exact)"
                          for r in pools)
        est = estimate(plan, library_from_board(board), board, int(extra.get("sfq.leak_bits", 16)))
        budget = check_budget(est, board, extra.get("sfq.junction_budget"))
        mode = str(extra.get("sfq.netlist", "auto"))
        build = mode == "always" or plan.program["coding"] == "stochastic" or (
            mode == "auto" and est["pulses_per_step"] <= int(extra.get("sfq.netlist_max_pulses", 50_000)))
        common = {"dt": dt, "coding": plan.program["coding"], "program": plan.program, "estimate": est,
                  "budget": budget, "notes": plan.notes,
                  "neurons": int(sum(li["size"] for li in plan.program["layers"].values())),
                  # outputs are read per clock period: step k of the board is step k of the reference
                  "latency_steps": 0, "layer_map": {name: name for name in plan.program["layers"]},
                  "semantic_warnings": plan.sem.get("semantic_warnings", [])}
        if not build:
            figs = figures(est["jj"], est["bias_uA"], 0.0, est["period_fs"], est["latency_fs"], board, steps,
                           extra.get("sfq.cooling_overhead"))
            meta = {**common, "period_fs": est["period_fs"], "latency_fs": est["latency_fs"], "cells": est["cells"],
                    "jj": est["jj"], "bias_A": figs["bias_A"], "static_power_W": figs["static_power_W"],
                    "netlist": "not built", "timing_clean": True,
                    "latency_periods": -(-est["latency_fs"] // max(1, est["period_fs"]))}
            files = {"code/report.txt": estimate_report(est, budget, board, figs)}
            return Artifact(board=board.name, backend=self.name, reference=g, program=None, options=options,
                            arrays=plan.arrays, meta=json.loads(dumps(meta)), files=files)
        nl, arrays, info = lower_graph(pg, dt, board, options, plan=plan)
        sta = analyse(nl)
        figs = compile_figures(nl, board, steps, extra.get("sfq.cooling_overhead"))
        files = {
            "code/netlist.json": nl.to_json(),
            "code/top.cir": josim_deck(nl, library=str(extra.get("sfq.cell_library", "spikeforge")),
                                       custom_cells=extra.get("sfq.custom_cells"), steps=max(1, min(steps, 8))),
            "code/cells.cir": cells_file(nl),
            "code/report.txt": report_text(nl, board, info, sta, figs),
            "code/sta.json": dumps({"summary": sta.summary(), "violations": sta.violations,
                                    "warnings": sta.warnings}),
        }
        meta = {**common, "period_fs": nl.period_fs, "latency_fs": nl.latency_fs,
                "cells": len(nl.cells), "jj": figs["jj"], "bias_A": figs["bias_A"],
                "plumbing_fraction": figs["plumbing_fraction"], "static_power_W": figs["static_power_W"],
                "sta": sta.summary(), "layers": info["layers"], "notes": info["notes"], "netlist": "built",
                "timing_clean": sta.ok, "latency_periods": -(-nl.latency_fs // max(1, nl.period_fs)),
                "semantic_warnings": info["semantic_warnings"]}
        return Artifact(board=board.name, backend=self.name, reference=g, program=None, options=options,
                        arrays=arrays, meta=json.loads(dumps(meta)), files=files)

    def emulator(self) -> Emulator:
        from spikeforge.emulators.sfq import SFQEmulator

        self._last_emulator = SFQEmulator()
        return self._last_emulator

    def cost_model(self) -> CostModel:
        return SFQCostModel()

    def verify_extra(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> list[tuple[str, bool, str]]:
        """Static timing must be clean, and the physical emulation must see no violations on these inputs."""
        from spikeforge.emulators.sfq import PULSE_AUTO_MAX, SFQEmulator, pulse_workload

        if "code/netlist.json" not in artifact.files:   # analytic mode: the array emulator
            from spikeforge.emulators.sfq_array import run_arrays

            tr = run_arrays(artifact.meta["program"], artifact.arrays, inputs)
            n = int(tr.meta["order_dependent"])
            return [("sfq array emulation exact", n == 0, f"{n} (step, sample, neuron) where a partial sum may "
                     f"pass the loop capacity though the step's net sum does not (pulse order decides; array "
                     f"emulator); first: {tr.meta['first_overflow']}; {_saturations(tr)}")]
        nl = Netlist.from_json(artifact.files["code/netlist.json"])
        sta = analyse(nl)
        checks = [("sfq static timing", sta.ok, f"{len(sta.violations)} violation(s) at period "
                   f"{nl.period_fs / 1000:.1f} ps" + (f"; first: {sta.violations[0]['message']}" if sta.violations else ""))]
        last = getattr(self, "_last_emulator", None)
        fresh = last is not None and last.last_run == (id(artifact), id(inputs)) and last.last_trace is not None
        if fresh and last.last_trace.meta.get("mode") == "physical":
            tr, scope = last.last_trace, "all samples"   # `verify` just emulated these inputs: reuse
        else:   # the board trace came from the array engine: replay a bounded subset pulse by pulse
            b_all = int(np.asarray(next(iter(inputs.values()))).shape[1])
            one = max(1, pulse_workload(artifact, {k: np.asarray(v)[:, :1] for k, v in inputs.items()}))
            nb = max(1, min(b_all, PULSE_AUTO_MAX // one))
            sub = {k: np.asarray(v)[:, :nb] for k, v in inputs.items()}
            tr, scope = SFQEmulator(mode="physical", engine="pulse").run(artifact, sub), f"first {nb} of {b_all} samples"
            if fresh:
                checks.append(_engines_agree(last.last_trace, tr, nb, scope))
        n = int(tr.meta["violation_count"])
        first = tr.meta["violations"][0]["message"] if n else ""
        checks.append(("sfq emulated timing", n == 0, f"{n} violation(s) by kind {tr.meta['violations_by_kind']} "
                       f"({scope}, pulse engine)" + (f"; first: {first}" if first else "") + f"; {_saturations(tr)}"))
        return checks



def _saturations(tr) -> str:
    """Storage-loop saturations are defined behaviour (escape junction), reported here, gated by the outputs."""
    by = tr.meta.get("saturations_by_population") or {}
    return (f"storage-loop saturations (not violations; their effect is gated by the output checks): "
            f"{sum(by.values())} {dict(sorted(by.items()))}")


def _engines_agree(arr, pulse, nb: int, scope: str) -> tuple[str, bool, str]:
    """The array engine approximates pulse order only where a loop saturates mid-step; on the replayed samples
    the pulse engine (the chip's behaviour) must agree with it within verify's own classifier gates."""
    from spikeforge.gates import Gates

    g = Gates().resolved("classifier")
    a = np.concatenate([np.asarray(arr.outputs[k])[:, :nb].reshape(np.shape(arr.outputs[k])[0], nb, -1)
                        for k in pulse.outputs], axis=-1).sum(0)
    p = np.concatenate([np.asarray(v).reshape(np.shape(v)[0], nb, -1) for v in pulse.outputs.values()], axis=-1).sum(0)
    same = int(np.sum(a != p)) == 0
    decided = [b for b in range(nb) if np.sum(p[b] == p[b].max()) == 1 and np.sum(a[b] == a[b].max()) == 1]
    agree = float(np.mean([a[b].argmax() == p[b].argmax() for b in decided])) if decided else 1.0
    err = float(np.abs(a - p).sum() / max(1.0, float(p.sum())))
    ok = same or (agree >= g.min_agreement and err <= float(g.max_count_error))
    return ("sfq engines agree", ok, f"array engine vs pulse engine on the {scope}: "
            + ("identical output counts" if same else
               f"prediction agreement {agree:.1%} on {len(decided)} decided samples (min {g.min_agreement:.0%}), "
               f"output count difference {err:.1%} of the pulse engine's (max {float(g.max_count_error):.0%})")
            + f"; array saturations {arr.meta.get('saturation_count', 0)}, order-dependent "
            f"{arr.meta.get('order_dependent', 0)} (pulse order decides there)")
