#!/usr/bin/env python3
"""Worked example: train an MLP on sklearn digits with optical Direct Feedback Alignment.

1. build a 64-128-128-10 MLP as an NIR graph (Affine + IF, as the ONNX frontend emits for a ReLU MLP);
2. compile it for the `lighton-opu` board: the artifact is a DFA training program + code/train_dfa.py;
3. train it three ways on the same seed: optical DFA through the OPU emulator (8-bit camera, ternary
   error), digital DFA, and backprop;
4. print what an epoch costs on the OPU next to the same projection done digitally.

    python examples/photonic_dfa_digits.py [--epochs 15] [--out /tmp/digits-opu]
    python examples/photonic_dfa_digits.py --conv backprop   # small conv net: conv stack off the OPU,
                                                             # trained by backprop of the DFA delta (or: freeze)
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


def conv_net(ch: int = 8, hidden: int = 64, seed: int = 0) -> nir.NIRGraph:
    """(1, 8, 8) -> Conv2d 3x3 -> IF -> SumPool 2x2 -> Flatten -> Affine(hidden) -> IF -> Affine(10)."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1 / 3, (ch, 1, 3, 3)).astype(np.float32),
                           stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(ch, np.float32)),
        "if_c": nir.IF(r=np.ones((ch, 8, 8)), v_threshold=np.ones((ch, 8, 8))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([ch, 4, 4])}, start_dim=0, end_dim=-1),
        "fc0": nir.Affine(weight=rng.normal(0, 0.1, (hidden, ch * 16)).astype(np.float32),
                          bias=np.zeros(hidden, np.float32)),
        "if0": nir.IF(r=np.ones(hidden), v_threshold=np.ones(hidden)),
        "fc1": nir.Affine(weight=rng.normal(0, 0.1, (10, hidden)).astype(np.float32), bias=np.zeros(10, np.float32)),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata={"spikeforge.dt": 1e-3})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/spikeforge-digits-opu")
    ap.add_argument("--conv", choices=["none", "backprop", "freeze"], default="none",
                    help="compile a small conv net instead of the MLP, with this conv policy")
    args = ap.parse_args()

    board = get_board("lighton-opu")
    backend = PhotonicBackend()
    if args.conv == "none":
        art = backend.lower(mlp([64, 128, 128, 10]), board, CompileOptions(seed=args.seed))
    else:
        art = backend.lower(conv_net(), board, CompileOptions(seed=args.seed, extra={"photonic.conv": args.conv}))
        print("\n".join(f"warning: {w}" for w in art.meta["warnings"]))
        print(f"roles: {art.meta['program']['roles']}")
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

    shape = tuple(prog["front_end"]["input_shape"]) if prog.get("front_end") else (64,)
    x = np.zeros((1, 32, *shape), np.float32)  # one forward step of a 32-sample batch
    trace = backend.emulator().run(art, {"input": x})
    prof = backend.cost_model().profile(art, trace)
    for item in prof.resources:
        print(f"  {item.component:30s} {item.value:12.4g} {item.unit:8s} {item.formula}")
    print(prof.notes[0])


if __name__ == "__main__":
    main()
