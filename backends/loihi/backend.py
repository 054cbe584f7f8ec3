"""The Loihi backend: NIR -> Lava fixed-point program, mapped onto cores, emitted as a runnable Lava script."""

from __future__ import annotations

import nir
import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.reference.backend import with_dt
from spikeforge.boards import Board
from spikeforge.emulators.loihi import LoihiEmulator, program_of, run_program
from spikeforge.interfaces import Backend, CompileOptions, CostModel, Emulator

from .cost import LoihiCostModel
from .emit import emit
from .lower import lower
from .mapping import map_program
from .options import OPTIONS


class LoihiBackend(Backend):
    name = "loihi"
    options = OPTIONS
    #: Lava's LIF (and the Loihi compartment) resets v to 0 on a spike
    ann_reset = "zero"

    def lower(self, graph: nir.NIRGraph, board: Board, options: CompileOptions) -> Artifact:
        g, dt = with_dt(graph, options)
        low = lower(g, board, dt, options.extra, options.timesteps)
        report = map_program(low.program, board, low.shapes)
        spec, arrays = low.program.to_data()
        spec["io"] = low.io
        for name, scale in low.out_scales.items():
            arrays[f"out/{name}/scale"] = np.asarray(scale, dtype=np.float64)
        for name, off in low.out_offsets.items():
            arrays[f"out/{name}/offset"] = np.asarray(off, dtype=np.float64)
        for key, scale in low.probe_scales.items():
            arrays[f"probe/{key}"] = scale
        rng = np.random.default_rng(options.seed)
        T = int(options.timesteps or 20)
        example = {n: (rng.random((T, 1, size)) < 0.2).astype(np.int8) for n, size in low.program.inputs.items()}
        files = emit(spec, arrays, board.name, report, low.layers, example)
        meta = {
            "dt": dt,
            "program": spec,
            "io": low.io,
            "layers": low.layers,
            "mapping": report,
            "warnings": low.warnings,
            "neurons": report["neurons"],
            # the emulator re-aligns every Output to the reference's time axis (it pads `latency` steps and
            # cuts each output at its layer's offset), so its Output traces lag by 0; the pipeline latency
            # of the chip itself is `pipeline_latency_steps` (per output: `offset - 1`)
            "latency_steps": 0,
            "latency_steps_by_output": {o: 0 for o in low.io["outputs"]},
            "pipeline_latency_steps": low.io["latency"],
            "pipeline_latency_steps_by_output": {o: int(v["offset"]) - 1 for o, v in low.io["outputs"].items()},
            "layer_map": {n: n for n in low.program.pops if n in g.nodes and n not in low.readouts.values()},
            "readouts": low.readouts,
            "semantic_warnings": list(low.semantic.get("semantic_warnings", [])),
            "pop_shapes": {n: list(s) if s else None for n, s in low.shapes.items()},
            "pop_spiking": low.spiking,
            "summary": {
                "populations": len(low.program.pops), "connections": len(low.program.conns),
                "neurons": report["neurons"], "synapses": report["synapses"],
                "cores": f"{report['cores_used']} of {report['cores_available']}",
                "pipeline_latency_steps": low.io["latency"],
                "lava_processes": sorted({c.kind for c in low.program.conns} | {"RingBuffer"} | {
                    "LIFRefractory" if p.refractory else "LIF" for p in low.program.pops.values()}),
            },
        }
        return Artifact(board=board.name, backend=self.name, reference=g, arrays=arrays, meta=meta, files=files,
                        options=options)

    def emulator(self) -> Emulator:
        return LoihiEmulator()

    def cost_model(self) -> CostModel:
        return LoihiCostModel()

    def verify_extra(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> list[tuple[str, bool, str]]:
        """Fit report, and (when Lava is installed and the run is small) Lava fixed_pt vs the emulator on the
        first sample, bit for bit on spikes, u and v of every population."""
        from ._lava_compat import lava_available

        m = artifact.meta.get("mapping", {})
        checks = [("fits_board", True, f"{m.get('cores_used')} of {m.get('cores_available')} cores")]
        prog = program_of(artifact)
        io = artifact.meta["io"]
        first = next(iter(inputs.values()))
        T = int(first.shape[0])
        n_neurons = sum(p.size for p in prog.pops.values())
        # A check that did not run is not listed: a skipped comparison must never read as a pass.
        if not lava_available() or n_neurons * (T + io["latency"]) > 2_000_000:
            return checks
        from .network_template import run_lava

        pin = {}
        for nir_name, pname in io["inputs"].items():
            x = np.asarray(inputs[nir_name])[:, :1]
            x = x.reshape(x.shape[0], 1, -1)
            pad = np.zeros((T + io["latency"], 1, x.shape[2]), np.int32)
            pad[:T] = x != 0
            pin[pname] = pad
        spec = dict(artifact.meta["program"])
        lava = run_lava(spec, artifact.arrays, pin, probes=True)
        emu = run_program(prog, pin, probes=True)
        bad = []
        for n in prog.pops:
            for var, mine in (("s", emu.spikes[n]), ("u", emu.u[n]), ("v", emu.v[n])):
                if not np.array_equal(lava[f"{n}/{var}"].astype(np.int64), mine.astype(np.int64)):
                    bad.append(f"{n}.{var}")
        checks.append(("lava_bit_exact", not bad,
                       "emulator == Lava fixed_pt on sample 0 (s, u, v of every population)" if not bad
                       else f"mismatch in {', '.join(bad)}"))
        return checks
