#!/usr/bin/env python3
"""Lava network emitted by spikeforge (backend `loihi`). Runs as is: `python network.py --input X.npz`.

Builds one Lava process per population (LIF, or LIFRefractory with the fixed-point model below) and per connection (Dense / Sparse / DelayDense /
DelaySparse) from `program.json` and `weights.npz` in this directory, feeds each input with a RingBuffer
and runs under `Loihi2SimCfg(select_tag="fixed_pt")`, the bit-accurate CPU simulation. spikeforge's
emulator reproduces this run bit for bit (`spikeforge emulate`).

Hardware: set USE_HARDWARE = True (or pass --hw) on a machine with Intel's Loihi 2 stack (lava-loihi,
NDA); then `Loihi2HwCfg` is used and the RingBuffer/Monitor I/O may need the lava-loihi adapters.

Time: NIR time step t of the model is Loihi step t + offset of the layer (one step of latency per
synapse hop); the script pads the input with `latency` zero steps and reports outputs re-aligned.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# ---- switch: simulation (default) or Loihi hardware ------------------------------------------------
USE_HARDWARE = False

HERE = Path(__file__).resolve().parent


def _import_lava():
    """Lava 0.10.0 needs a small import-time fix on Python >= 3.11 (spikeforge's compat hook)."""
    if sys.version_info >= (3, 11):
        try:
            from spikeforge.backends.loihi._lava_compat import install
        except ImportError as exc:  # pragma: no cover
            raise SystemExit("Lava 0.10.0 on Python 3.11 needs spikeforge's compat hook: "
                             f"pip install spikeforge ({exc})") from None
        install()
    import lava.magma.core.run_conditions as rc
    import lava.magma.core.run_configs as cfg
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFRefractory
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode
    return {"RunSteps": rc.RunSteps, "Loihi2SimCfg": cfg.Loihi2SimCfg,
            "Loihi2HwCfg": getattr(cfg, "Loihi2HwCfg", None), "Dense": Dense, "DelayDense": DelayDense,
            "Sparse": Sparse, "DelaySparse": DelaySparse, "Conv": Conv, "RingBuffer": RingBuffer, "LIF": LIF,
            "LIFRefractory": LIFRefractory, "RefractoryModel": _refractory_model(LIFRefractory),
            "Monitor": Monitor, "SignMode": SignMode}


def _refractory_model(LIFRefractory):
    """Fixed-point ProcessModel of Lava's LIFRefractory (Lava 0.10 ships a floating-point one only).

    The bit-accurate LIF dynamics (AbstractPyLifModelFixed) with the float model's refractory rule, as
    Loihi's refractory delay: for `refractory_period` steps after a spike v is not updated (it stays 0,
    that step's input and bias do not reach it) while u integrates as usual."""
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.ports import PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.resources import CPU
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.lif.models import AbstractPyLifModelFixed

    @implements(proc=LIFRefractory, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyLifRefractoryModelFixed(AbstractPyLifModelFixed):
        s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        vth: int = LavaPyType(int, np.int32, precision=17)
        refractory_period_end: np.ndarray = LavaPyType(np.ndarray, int)

        def scale_threshold(self):
            self.effective_vth = np.left_shift(self.vth, self.vth_shift)
            self.isthrscaled = True

        def spiking_activation(self):
            return self.v > self.effective_vth

        def subthr_dynamics(self, activation_in):
            held = self.refractory_period_end >= self.time_step
            v = self.v.copy()
            super().subthr_dynamics(activation_in)
            self.v[held] = v[held]

        def reset_voltage(self, spike_vector):
            super().reset_voltage(spike_vector)
            self.refractory_period_end[spike_vector] = self.time_step + self.proc_params["refractory_period"]

    return PyLifRefractoryModelFixed


def load(directory: Path = HERE) -> tuple[dict, dict[str, np.ndarray]]:
    spec = json.loads((directory / "program.json").read_text())
    with np.load(directory / "weights.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return spec, arrays


def _weights(c: dict, arrays: dict[str, np.ndarray]):
    """(weights, delays) of a connection: CSR matrices for Sparse processes, dense arrays for Dense."""
    from scipy.sparse import csr_matrix

    n = c["name"]
    if c.get("csr"):
        shape = tuple(int(x) for x in c["shape"])
        idx, ptr = arrays[f"conn/{n}/w_indices"], arrays[f"conn/{n}/w_indptr"]
        w = csr_matrix((arrays[f"conn/{n}/w_data"].astype(np.int32), idx, ptr), shape=shape)
        d = csr_matrix((arrays[f"conn/{n}/delays_data"].astype(np.int32), idx, ptr), shape=shape) \
            if c.get("delays") else None
        return (w, d) if c.get("sparse") else (w.toarray(), None if d is None else d.toarray())
    w = arrays[f"conn/{n}/weights"].astype(np.int32)
    d = arrays[f"conn/{n}/delays"].astype(int) if c.get("delays") else None
    if c.get("sparse"):
        d = None if d is None else csr_matrix(np.where(w != 0, d, 0))
        w = csr_matrix(w)
    return w, d


def _connect_conv(L: dict, procs: dict, c: dict, arrays: dict[str, np.ndarray]) -> None:
    """Lava's Conv works on (W, H, C) with a flipped (C_out, kW, kH, C_in) kernel; the populations are flat
    (C, H, W) vectors as in NIR: reshape + transpose the ports on both sides."""
    g = c["conv"]
    C, H, W = (int(x) for x in g["in_shape"])
    k = arrays[f"conn/{c['name']}/kernel"].astype(np.int32)          # (C_out, C_in/groups, kh, kw)
    weight = np.ascontiguousarray(k.transpose([0, 3, 2, 1])[:, ::-1, ::-1])
    proc = L["Conv"](weight=weight, input_shape=(W, H, C), padding=tuple(g["padding"])[::-1],
                     stride=tuple(g["stride"])[::-1], dilation=tuple(g["dilation"])[::-1], groups=int(g["groups"]),
                     weight_exp=int(c["weight_exp"]), num_weight_bits=int(c["num_weight_bits"]))
    procs[c["src"]].s_out.reshape((C, H, W)).transpose([2, 1, 0]).connect(proc.s_in)
    n_out = int(np.prod(proc.a_out.shape))
    proc.a_out.transpose([2, 1, 0]).reshape((n_out,)).connect(procs[c["dst"]].a_in)
    procs[c["name"]] = proc


def run_lava(spec: dict, arrays: dict[str, np.ndarray], inputs: dict[str, np.ndarray], *,
             probes: bool = False, hardware: bool = USE_HARDWARE) -> dict[str, np.ndarray]:
    """Run the program on inputs {program input: (steps, batch, n) 0/1}, one Lava run per sample.

    Returns {'pop/s': (steps, batch, n)} and, with probes, 'pop/u', 'pop/v'; row s-1 is Loihi step s.
    """
    L = _import_lava()
    first = next(iter(inputs.values()))
    steps, batch = int(first.shape[0]), int(first.shape[1])
    out: dict[str, list[np.ndarray]] = {}
    for b in range(batch):
        procs, monitors, sources = {}, {}, []
        for i in spec["inputs"]:
            data = np.asarray(inputs[i["name"]][:, b, :]).T.astype(np.int32)   # (n, steps)
            procs[i["name"]] = L["RingBuffer"](data=data)
            sources.append(procs[i["name"]])
        for p in spec["pops"]:
            n = p["name"]
            mant = arrays[f"pop/{n}/bias_mant"].astype(np.int32)
            start = int(p.get("bias_start", 1))
            refractory = {"refractory_period": int(p["refractory"])} if int(p.get("refractory", 0)) else {}
            procs[n] = L["LIFRefractory" if refractory else "LIF"](
                shape=(int(p["size"]),), du=int(p["du"]), dv=int(p["dv"]), vth=int(p["vth"]),
                bias_mant=mant if start <= 1 else np.zeros_like(mant),
                bias_exp=arrays[f"pop/{n}/bias_exp"].astype(np.int32), name=n, **refractory)
        for c in spec["conns"]:
            n = c["name"]
            kw = {"weight_exp": int(c["weight_exp"]), "num_weight_bits": int(c["num_weight_bits"]),
                  "sign_mode": getattr(L["SignMode"], str(c["sign_mode"]).upper())}
            if c.get("conv"):
                _connect_conv(L, procs, c, arrays)
                continue
            w, d = _weights(c, arrays)
            if c.get("delays"):
                dmax = int(d.max()) if not hasattr(d, "tocsr") else int(d.data.max(initial=0))
                cls = L["DelaySparse"] if c.get("sparse") else L["DelayDense"]
                proc = cls(weights=w, delays=d, max_delay=dmax, **kw)
            else:
                proc = (L["Sparse"] if c.get("sparse") else L["Dense"])(weights=w, **kw)
            procs[c["src"]].s_out.connect(proc.s_in)
            proc.a_out.connect(procs[c["dst"]].a_in)
            procs[n] = proc
        for p in spec["pops"]:
            n = p["name"]
            vars_ = [("s", procs[n].s_out)]
            if probes:
                vars_ += [("u", procs[n].u), ("v", procs[n].v)]
            for var, port in vars_:
                m = L["Monitor"]()
                m.probe(port, steps)
                monitors[(n, var)] = m
        cfg = L["Loihi2HwCfg"]() if hardware else L["Loihi2SimCfg"](
            select_tag="fixed_pt", exception_proc_model_map={L["LIFRefractory"]: L["RefractoryModel"]})
        runner = sources[0]
        # Biases switch on at each layer's first step of model time (emitted as run segments).
        starts = sorted({int(p.get("bias_start", 1)) for p in spec["pops"] if int(p.get("bias_start", 1)) > 1})
        done = 0
        try:
            for start in starts + [steps + 1]:
                seg = min(start - 1, steps) - done
                if seg > 0:
                    runner.run(condition=L["RunSteps"](num_steps=seg), run_cfg=cfg)
                    done += seg
                for p in spec["pops"]:
                    if int(p.get("bias_start", 1)) == start and start <= steps:
                        procs[p["name"]].bias_mant.set(arrays[f"pop/{p['name']}/bias_mant"].astype(np.int32))
            for (n, var), m in monitors.items():
                data = m.get_data()
                arr = next(iter(data.values()))
                arr = arr[next(iter(arr))] if isinstance(arr, dict) else arr
                out.setdefault(f"{n}/{var}", []).append(np.asarray(arr).reshape(steps, -1))
        finally:
            runner.stop()
    return {k: np.stack(v, axis=1) for k, v in out.items()}


def _nir_inputs(spec: dict, data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    io = spec["io"]
    latency = int(io["latency"])
    res, T = {}, 0
    for nir_name, pname in io["inputs"].items():
        if nir_name not in data:
            raise SystemExit(f"input file has no array '{nir_name}' (keys: {sorted(data)})")
        x = np.asarray(data[nir_name])
        x = x.reshape(x.shape[0], x.shape[1], -1)
        T = x.shape[0]
        pad = np.zeros((T + latency, x.shape[1], x.shape[2]), np.int32)
        pad[:T] = x != 0
        res[pname] = pad
    return res, T


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=str(HERE / "example_input.npz"),
                    help=".npz with one (time, batch, ...) array per model input (default: example_input.npz)")
    ap.add_argument("--out", default=None, help="write outputs (and probes) to this .npz")
    ap.add_argument("--probe", action="store_true", help="also record u and v of every population")
    ap.add_argument("--hw", action="store_true", help="run on Loihi hardware (Loihi2HwCfg)")
    args = ap.parse_args(argv)
    spec, arrays = load()
    with np.load(args.input, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    if len(spec["io"]["inputs"]) == 1 and "input" in data and next(iter(spec["io"]["inputs"])) not in data:
        data = {next(iter(spec["io"]["inputs"])): data["input"]}
    inputs, T = _nir_inputs(spec, data)
    analog = any(o["var"] != "s" for o in spec["io"]["outputs"].values())
    res = run_lava(spec, arrays, inputs, probes=args.probe or analog, hardware=args.hw or USE_HARDWARE)
    result = {f"loihi/{k}": v for k, v in res.items()}
    for out_name, o in spec["io"]["outputs"].items():
        off = int(o["offset"])
        if o["var"] == "s":
            result[out_name] = res[f"{o['pop']}/s"][off - 1: off - 1 + T]
            counts = result[out_name].sum(axis=0)
            print(f"{out_name}: spike counts per sample (first 5): {counts[:5].tolist()}")
        else:   # v of a non-spiking neuron or u of a readout, back in the model's float units
            x = res[f"{o['pop']}/{o['var']}"][off - 1: off - 1 + T] / arrays[f"out/{out_name}/scale"]
            if f"out/{out_name}/offset" in arrays:
                x = x + arrays[f"out/{out_name}/offset"]
            result[out_name] = x
            print(f"{out_name}: mean value per sample (first 5): {x.mean(axis=(0, 2))[:5].round(4).tolist()}")
    if args.out:
        np.savez(args.out, **result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
