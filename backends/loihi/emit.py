"""The emitted code directory: code/network.py (Lava script), program.json, weights.npz, README.md."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.emitsafe import one_line

TEMPLATE = Path(__file__).with_name("network_template.py")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Deterministic .npz content (fixed timestamps, sorted keys) as bytes. Deflate level 1: the weight
    tables of a 1 M-synapse model take ~1.8 s at zlib's default level and ~0.2 s at level 1."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key in sorted(arrays):
            item = io.BytesIO()
            np.lib.format.write_array(item, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, item.getvalue(), compresslevel=1)
    return buf.getvalue()


def readme(spec: dict[str, Any], board: str, mapping: dict[str, Any], layers: list[dict[str, Any]]) -> str:
    lines = [
        f"# Lava network for board `{one_line(board)}` (emitted by spikeforge)",
        "",
        "Run (CPU, bit-accurate fixed point, Lava 0.10.0):",
        "",
        "    python network.py --input inputs.npz --out outputs.npz [--probe]",
        "",
        "`inputs.npz` holds one array per model input, shaped (time, batch, ...), 0/1 spikes (the same file",
        "`spikeforge emulate` takes); without `--input` the bundled `example_input.npz` is used.",
        "On Python 3.11, Lava 0.10.0 needs spikeforge's import hook (installed automatically when spikeforge is",
        "importable). For Loihi hardware set `USE_HARDWARE = True` in network.py (or `--hw`): it selects",
        "`Loihi2HwCfg`, which needs Intel's lava-loihi extension.",
        "",
        "Timing: Loihi adds one step of latency per synapse hop. Layer offsets (the Loihi step holding the",
        f"model's time step 0) are in program.json; the script pads {spec['io']['latency']} zero steps and",
        "re-aligns the outputs. Biases are switched on at each layer's offset (the script runs in segments).",
        "",
        f"Mapping: {mapping['cores_used']} of {mapping['cores_available']} cores, {mapping['neurons']} neurons, "
        f"{mapping['synapses']} synapses.",
        "",
        "| population | size | offset | du | dv | vth | scale (v_int / v) |",
        "|---|---|---|---|---|---|---|",
    ]
    for L in layers:
        lines.append(f"| {one_line(L['node'])} | {L['size']} | {L['offset']} | {L['du']} | {L['dv']} | {L['vth']} | "
                     f"{L['scale_min']:.6g}..{L['scale_max']:.6g} |")
    lines += ["", "| connection | Lava process | weight_exp | sign mode | delay |", "|---|---|---|---|---|"]
    kinds = {c["name"]: c["kind"] for c in spec["conns"]}
    for L in layers:
        for c in L["connections"]:
            lines.append(f"| {one_line(c['connection'])} | {kinds.get(c['connection'], '?')} | {c['weight_exp']} | "
                         f"{c['sign_mode']} | {c['delay']} |")
    return "\n".join(lines) + "\n"


def emit(spec: dict[str, Any], arrays: dict[str, np.ndarray], board: str, mapping: dict[str, Any],
         layers: list[dict[str, Any]], example: dict[str, np.ndarray]) -> dict[str, str | bytes]:
    buf = io.StringIO()
    json.dump(spec, buf, indent=2, sort_keys=True)
    return {
        "code/network.py": TEMPLATE.read_text(),
        "code/program.json": buf.getvalue() + "\n",
        "code/weights.npz": npz_bytes(arrays),
        "code/example_input.npz": npz_bytes(example),
        "code/README.md": readme(spec, board, mapping, layers),
    }
