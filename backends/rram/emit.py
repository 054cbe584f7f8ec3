"""What a chip team needs from a compile: the programming map, a readout training script, a report."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.emitsafe import one_line


def programming_map(art: Artifact, board: Any) -> dict[str, Any]:
    """Per tile: rows / neurons it holds, targets (arrays in arrays.npz), ADC settings, forming ramps."""
    gmax = float(board.value("physics.g_max"))
    ni = art.meta["nonideal"]
    tiles = []
    for t in art.meta["tiles"]:
        k = t["tile"]
        entry = {
            "tile": k, "macro": k, "kind": t["kind"], "word_lines": t["rows"], "neurons": t["neurons"],
            "bit_lines": [0, 2 * (t["neurons"][1] - t["neurons"][0])],
            "layout": "pair j: G+ on bit line 2j, G- on bit line 2j+1",
            "targets": {"g_pos": f"arrays.npz:tile{k:03d}.g_pos", "g_neg": f"arrays.npz:tile{k:03d}.g_neg",
                        "unit": f"fraction of g_max = {gmax * 1e6:g} uS"},
            "adc": {"bits": ni["adc_bits"], "full_scale_g": t["adc_full_scale"],
                    "full_scale_uA": t["adc_full_scale"] * gmax * board.value("physics.v_read") * 1e6,
                    "digital_gain_w_per_g": t["w_per_g"]},
        }
        if art.meta["mode"] == "zero_shot":
            v = np.asarray(art.arrays[f"tile{k:03d}.v_form"], np.float64)
            entry["forming"] = {"ramp_stop_V": f"arrays.npz:tile{k:03d}.v_form (per word line)",
                                "min_V": float(v.min()), "max_V": float(v.max()), "mean_V": float(v.mean())}
        else:
            entry["write_verify"] = {"levels": ni["levels"]}
        tiles.append(entry)
    return {"board": art.board, "mode": art.meta["mode"], "tiles": tiles}


REPORT = """# RRAM LSM compile report

* board: {board}, mode: **{mode}**, time step {dt:g} s
* reservoir: {n} neurons, {n_in} input channels, readout: {readout}
* macros (512 x 512 tiles): **{macros}**, cells used {cells} ({util:.1%} of the macros)
{zero}
| tile | kind | word lines | neurons | utilisation | w per g | ADC full scale (g) | mean G (uS) |
|---|---|---|---|---|---|---|---|
{rows}
"""


def report(art: Artifact) -> str:
    m = art.meta
    st = m["structure"]
    rows = "\n".join(
        f"| {t['tile']} | {t['kind']} | {t['rows'][0]}-{t['rows'][1]} | {t['neurons'][0]}-{t['neurons'][1]} | "
        f"{t['utilisation']:.1%} | {t['w_per_g']:.4g} | {t['adc_full_scale']:.4g} | {t['mean_conductance_uS']:.3g} |"
        for t in m["tiles"])
    zero = ""
    if m["mode"] == "zero_shot":
        zero = "".join(f"* {k}: formed fraction {v['formed_fraction']:.3f}, digital gain {v['gain']:.4g}\n"
                       for k, v in m["zero_shot"].items())
    ro = m.get("readout") or {}
    rdesc = f"{ro['method']} (train accuracy {ro['train_accuracy']:.3f})" if ro else (
        "from the model (untrained here)" if st["readout"] else "none")
    return REPORT.format(board=art.board, mode=m["mode"], dt=m["dt"], n=st["n"], n_in=st["n_in"], readout=rdesc,
                         macros=m["macros"], cells=m["cells_used"], util=m["cell_utilisation"], zero=zero, rows=rows)


TRAIN_SCRIPT = '''#!/usr/bin/env python3
"""Train this artifact's digital readout on emulated reservoir states, then save the artifact again.

usage: train_readout.py ARTIFACT_DIR DATA.npz [--method ridge|logistic|contrastive] [--out DIR]
DATA.npz holds 'input' (T, B, n_in) binary spikes and 'labels' (B,).
"""
import argparse

from spikeforge.artifact import Artifact
from spikeforge.emitsafe import one_line
from spikeforge.backends.rram import fit_readout
from spikeforge.npzio import load_npz


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("data")
    ap.add_argument("--method", default="ridge", choices=["ridge", "logistic", "contrastive"])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    art = Artifact.load(a.artifact)
    data = load_npz(a.data)
    fit_readout(art, data["input"], data["labels"], method=a.method)
    art.save(a.out or a.artifact)
    print("readout:", art.meta["readout"])


if __name__ == "__main__":
    main()
'''


def emit(art: Artifact, board: Any) -> dict[str, str]:
    return {
        "code/programming_map.json": json.dumps(programming_map(art, board), indent=2, sort_keys=True) + "\n",
        "code/train_readout.py": TRAIN_SCRIPT,
        "code/report.md": report(art),
    }


def programming_map_programmed(art: Artifact, board: Any) -> dict[str, Any]:
    """Per weight layer and tile: the word lines / pairs it holds, its targets, ADC and DAC settings."""
    fx = art.meta["effects"]
    layers = []
    for i, lay in enumerate(art.meta["layers"]):
        tiles = [{"macro": k, "word_lines": t["rows"], "pairs": t["cols"], "utilisation": t["utilisation"],
                  "copies": {"rows": t.get("copies", [1, 1])[0], "columns": t.get("copies", [1, 1])[1],
                             "layout": "row copies on idle word lines below the tile (summed per column), column "
                                       "copies on idle bit lines beside it (converted apart, averaged)"},
                  "targets": {"g_pos": f"arrays.npz:xbar{i:03d}.t{k:03d}.g_pos",
                              "g_neg": f"arrays.npz:xbar{i:03d}.t{k:03d}.g_neg"},
                  "digital_gain_w_per_g": f"arrays.npz:xbar{i:03d}.t{k:03d}.ws", "adc": {"bits": fx["adc_bits"], "full_scale_g": t["adc_fs"],
                                                            "from": t["adc_fs_from"]}}
                 for k, t in enumerate(lay["tiles"])]
        layers.append({"node": lay["node"], "kind": lay["kind"], "matrix": [lay["in"], lay["out"]],
                       "mapping": "im2col, kernel-stationary" if lay["kind"] == "conv" else "dense",
                       "mvms_per_step": lay["positions"] or 1, "input": lay["encoding"],
                       "dac": {"bits": fx["dac_bits"], "lsb": lay["dac_lsb"], "full_scale": lay["dac_top"]},
                       "write_verify": {"levels": fx["levels"]}, "tiles": tiles})
    return {"board": art.board, "mode": "programmed", "macros": art.meta["macros"], "layers": layers}


def report_programmed(art: Artifact) -> str:
    m = art.meta
    rows = "\n".join(
        f"| {one_line(lay['node'], 60)} | {lay['kind']} | {lay['in']} x {lay['out']} | {len(lay['tiles'])} | "
        f"{np.mean([t['utilisation'] for t in lay['tiles']]):.1%} | {lay['positions'] or 1} | "
        f"{lay['weight_rel_error']:.3g} | {one_line(lay['encoding'], 60)} |"
        for lay in m["layers"])
    fx = ", ".join(f"{k}={v}" for k, v in m["effects"].items())
    return (f"# RRAM programmed-weight compile report\n\n* board: {one_line(art.board)}, mode: **programmed**, "
            f"time step {m['dt']:g} s\n* macros: **{m['macros']}**, mean tile utilisation {m['cell_utilisation']:.1%}\n"
            f"* effects: {fx}\n* per-column gain calibration: "
            f"{'seed ' + str(m['calibrated_seed']) if 'calibrated_seed' in m else 'no'}\n\n"
            "| layer | kind | rows x pairs | macros | utilisation | MVMs/step | weight error (levels) | input |\n"
            "|---|---|---|---|---|---|---|---|\n" + rows + "\n")


def emit_programmed(art: Artifact, board: Any) -> dict[str, str]:
    return {
        "code/programming_map.json": json.dumps(programming_map_programmed(art, board), indent=2, sort_keys=True) + "\n",
        "code/report.md": report_programmed(art),
    }
