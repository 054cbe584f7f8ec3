"""Emitted code: a training script that runs the DFA program against the OPU emulator (default) or lightonml."""

from __future__ import annotations

import json
from typing import Any

from spikeforge.emitsafe import one_line

SCRIPT = '''#!/usr/bin/env python3
"""Optical DFA training program compiled by spikeforge for board {board}.

Layers (name: in -> out, role): {layers}
Convolutional front end (kept off the OPU): {front}
Feedback points: {points}; projection {n_out} columns ({layout}), ternary error on {n_classes} classes,
{fpv} frames per non-zero error vector, macro-pixel factor {macro}, {n_anchor} anchor features.

    python code/train_dfa.py                      # optical DFA through spikeforge's OPU emulator
    python code/train_dfa.py --method dfa         # digital DFA (same seeds), or --method bp
    python code/train_dfa.py --opu lightonml      # lightonml's OPU (a real device when one is attached)
    python code/train_dfa.py --opu lightonml-sim  # lightonml's noiseless SimulatedOpuDevice
    python code/train_dfa.py --data my.npz        # arrays x (N, {n_in}) and y (N,), or edit load_data()

The data loader is yours: edit `load_data`. By default it uses the data embedded at compile time.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.photonic.dfa import LightonmlFeedback, fit
from spikeforge.backends.photonic.lower import make_feedback, make_trainer
from spikeforge.boards import get_board
from spikeforge.npzio import save_npz

ARTIFACT = pathlib.Path(__file__).resolve().parent.parent


def load_data(args: argparse.Namespace, artifact: Artifact) -> tuple[np.ndarray, ...]:
    """Return x_train, y_train, x_test, y_test: float32 (N, {n_in}) features (flattened input) and integer labels."""
    if args.data:
        with np.load(args.data, allow_pickle=False) as z:
            x, y = z["x"].astype(np.float32), z["y"].astype(np.int64)
        cut = int(0.67 * len(x))
        return x[:cut], y[:cut], x[cut:], y[cut:]
    a = artifact.arrays
    if "data/x_train" not in a:
        raise SystemExit("no training data embedded in the artifact: pass --data FILE.npz or edit load_data()")
    return a["data/x_train"], a["data/y_train"], a["data/x_test"], a["data/y_test"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=["odfa", "dfa", "bp"], default="odfa")
    ap.add_argument("--opu", choices=["emulator", "lightonml", "lightonml-sim"], default="emulator")
    ap.add_argument("--epochs", type=int, default={epochs})
    ap.add_argument("--seed", type=int, default={seed})
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="trained_weights.npz")
    args = ap.parse_args()
    artifact = Artifact.load(ARTIFACT)
    program = artifact.meta["program"]
    x_tr, y_tr, x_te, y_te = load_data(args, artifact)
    if args.method == "odfa" and args.opu != "emulator":
        feedback = LightonmlFeedback(program, simulated=args.opu == "lightonml-sim")
    else:
        feedback = make_feedback(program, get_board(artifact.board), args.method)
    trainer = make_trainer(program, artifact.arrays, args.method, feedback, seed=args.seed)
    result = fit(trainer, x_tr, y_tr, epochs=args.epochs, batch=program["training"]["batch"], seed=args.seed,
                 x_test=x_te, y_test=y_te)
    print(f"{{args.method}} test accuracy per epoch: {{[round(a, 4) for a in result['history']]}}")
    if feedback is not None and hasattr(feedback, "frames"):
        print(f"OPU frames used: {{feedback.frames}}")
    weights = {{f"{{d['name']}}/{{k}}": v for d, (w, b) in zip(program["layers"], trainer.weights())
               for k, v in (("weight", w), ("bias", b))}}
    for name, (w, b) in trainer.feature_weights().items():  # conv front end (trained by backprop, or frozen)
        weights[f"{{name}}/weight"], weights[f"{{name}}/bias"] = w, b
    save_npz(args.out, weights)
    print(f"weights written to {{args.out}}")


if __name__ == "__main__":
    main()
'''

README = """# Optical DFA training program (board {board})

`train_dfa.py` trains the compiled MLP with Direct Feedback Alignment: the forward pass and the weight
updates run on the host; the backward projection e B of the (ternarised) output error runs on the OPU,
4 camera frames per non-zero error vector (anchor scheme), plus 4 frames per step for the centering
vector. Only the DFA-trained layers use the OPU: a convolutional front end is trained on the host by
backprop of the first head layer's DFA delta (`conv=backprop`) or frozen (`conv=freeze`); the roles
are in `program.roles`. By default it runs against spikeforge's OPU emulator (8-bit camera, shot/read noise, saturation);
`--opu lightonml` uses lightonml's `OPU` instead.

Program (also in ../manifest.json, key meta.program):

```json
{program}
```
"""


def emit_files(program: dict[str, Any], board: str) -> dict[str, str]:
    """code/train_dfa.py and code/README.md for the artifact (deterministic text)."""
    proj = program["projection"]
    layers = ", ".join(f"{d['name']}: {d['in']} -> {d['out']} ({d['role']})" for d in program["layers"])
    fe = program.get("front_end")
    front = "none" if not fe else f"input {tuple(fe['input_shape'])}, conv={fe['policy']}: " + ", ".join(
        f"{op['name']} {op['kind']}" + (f" ({op['role']})" if op["kind"] == "conv" else "") for op in fe["ops"])
    script = SCRIPT.format(
        board=one_line(board), layers=one_line(layers, 100_000), front=one_line(front, 100_000),
        points=one_line(", ".join(program["feedback_points"]) or "none", 100_000),
        n_out=proj["n_out"], layout=proj["layout"], n_classes=program["n_classes"],
        fpv=program["frames_per_vector"], macro=proj["macro"], n_anchor=proj["n_anchor"],
        n_in=program["n_inputs"], epochs=int(program["training"]["epochs"]), seed=int(program["opu_seed"]) - 1000,
    )
    readme = README.format(board=board, program=json.dumps(program, indent=2, sort_keys=True, default=str))
    return {"code/train_dfa.py": script, "code/README.md": readme}
