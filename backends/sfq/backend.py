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
        plan = plan_program(g, dt, board, options)
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
        nl, arrays, info = lower_graph(g, dt, board, options, plan=plan)
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
        from spikeforge.emulators.sfq import SFQEmulator

        if "code/netlist.json" not in artifact.files:   # analytic mode: the array emulator counts overflows
            from spikeforge.emulators.sfq_array import run_arrays

            tr = run_arrays(artifact.meta["program"], artifact.arrays, inputs)
            n = int(tr.meta["possible_overflow"])
            return [("sfq storage-loop capacity", n == 0, f"{n} (step, sample, neuron) where a loop may pass its "
                     f"capacity mid-step (array emulator); first: {tr.meta['first_overflow']}")]
        nl = Netlist.from_json(artifact.files["code/netlist.json"])
        sta = analyse(nl)
        checks = [("sfq static timing", sta.ok, f"{len(sta.violations)} violation(s) at period "
                   f"{nl.period_fs / 1000:.1f} ps" + (f"; first: {sta.violations[0]['message']}" if sta.violations else ""))]
        last = getattr(self, "_last_emulator", None)
        if last is not None and last.last_run == (id(artifact), id(inputs)) and last.last_trace is not None \
                and last.last_trace.meta.get("mode") == "physical":
            tr = last.last_trace          # `verify` just emulated these inputs: reuse, do not run twice
        else:
            tr = SFQEmulator(mode="physical").run(artifact, inputs)
        n = int(tr.meta["violation_count"])
        first = tr.meta["violations"][0]["message"] if n else ""
        checks.append(("sfq emulated timing", n == 0, f"{n} violation(s) by kind {tr.meta['violations_by_kind']}"
                       + (f"; first: {first}" if first else "")))
        return checks

