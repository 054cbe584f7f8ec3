#!/usr/bin/env python3
"""Worked example: train an MLP on sklearn digits with optical Direct Feedback Alignment.

1. build a 64-128-128-10 MLP as an NIR graph (Affine + IF, as the ONNX frontend emits for a ReLU MLP);
2. compile it for the `lighton-opu` board: the artifact is a DFA training program + code/train_dfa.py;
3. train it three ways on the same seed: optical DFA through the OPU emulator (8-bit camera, ternary
   error), digital DFA, and backprop;
4. print what an epoch costs on the OPU next to the same projection done digitally.

    python examples/photonic_dfa_digits.py [--epochs 15] [--out /tmp/digits-opu]
"""

from __future__ import annotations

import argparse

import nir
import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.backends.photonic import PhotonicBackend
from spikeforge.backends.photonic.dfa import fit
from spikeforge.backends.photonic.lower import make_feedback, make_trainer
from spikeforge.boards import get_board
from spikeforge.interfaces import CompileOptions


def mlp(dims: list[int], seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([dims[0]])})}
    edges, prev = [], "input"
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        nodes[f"fc{i}"] = nir.Affine(weight=rng.normal(0, a ** -0.5, (b, a)).astype(np.float32),
                                     bias=np.zeros(b, np.float32))
        nodes[f"if{i}"] = nir.IF(r=np.ones(b), v_threshold=np.ones(b))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"if{i}")]
        prev = f"if{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([dims[-1]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": 1e-3})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/spikeforge-digits-opu")
    args = ap.parse_args()

    board = get_board("lighton-opu")
    backend = PhotonicBackend()
    art = backend.lower(mlp([64, 128, 128, 10]), board, CompileOptions(seed=args.seed))
    art = Artifact.load(art.save(args.out))
    prog = art.meta["program"]
    proj = prog["projection"]
    print(f"compiled to {art.path}: feedback points {prog['feedback_points']}, projection {proj['n_out']} columns "
          f"({proj['layout']}), macro-pixels x{proj['macro']}, {proj['n_anchor']} anchor features, "
          f"{prog['frames_per_vector']} frames per error vector")

    a = art.arrays
    data = (a["data/x_train"], a["data/y_train"], a["data/x_test"], a["data/y_test"])
    for method in ("odfa", "dfa", "bp"):
        fb = make_feedback(prog, board, method)
        trainer = make_trainer(prog, a, method, fb, seed=args.seed)
        r = fit(trainer, data[0], data[1], epochs=args.epochs, seed=args.seed, x_test=data[2], y_test=data[3])
        extra = f", {fb.frames / args.epochs:.0f} OPU frames per epoch" if method == "odfa" else ""
        print(f"{method:>5}: test accuracy {100 * r['accuracy']:.1f} %{extra}")

    x = np.zeros((1, 32, 64), np.float32)  # one forward step of a 32-sample batch
    trace = backend.emulator().run(art, {"input": x})
    prof = backend.cost_model().profile(art, trace)
    for item in prof.resources:
        print(f"  {item.component:30s} {item.value:12.4g} {item.unit:8s} {item.formula}")
    print(prof.notes[0])


if __name__ == "__main__":
    main()
