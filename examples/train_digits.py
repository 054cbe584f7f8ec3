"""Train the two bundled example models on scikit-learn's digits and write them to toolchain/models/.

* digits_snn.nir  - spiking MLP 64-64-10 of snnTorch Leaky neurons (reset to zero, immediate), trained with
                    surrogate gradients on rate-coded input, exported with snnTorch's own NIR exporter and
                    normalised by spikeforge's snnTorch conventions (dt, reset, threshold) in metadata.
* digits_mlp.onnx - ReLU MLP 64-64-10 trained on the analog pixels, written as an ONNX graph (Gemm/Relu/Gemm).
* digits_lsm.nir  - liquid state machine: a random 200-neuron LIF reservoir generated from a spec (no training)
                    with a ridge readout trained on its float spike rates (the RRAM backend's model class).
* digits_inputs.npz - the held-out test set: `input` (T, B, 64) rate-coded spikes (uint8), `labels` (B,),
                      `analog` (B, 64) pixel intensities in [0, 1].

Run: .venv/bin/python examples/train_digits.py   (about a minute on 2 cores; deterministic for a seed)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from spikeforge.models import digits_split, rate_code

T_STEPS = 25
DT = 1e-4  # snnTorch's exporter writes tau = dt / (1 - beta) with dt = 1e-4
OUT = Path(__file__).resolve().parents[1] / "toolchain" / "models"


def train_snn(xtr, ytr, xte, yte, seed: int):
    import snntorch as snn

    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(64, 64)
            self.lif1 = snn.Leaky(beta=0.9, reset_mechanism="zero", reset_delay=False, init_hidden=False)
            self.fc2 = torch.nn.Linear(64, 10)
            self.lif2 = snn.Leaky(beta=0.9, reset_mechanism="zero", reset_delay=False, init_hidden=False)

        def forward(self, spikes):  # (T, B, 64)
            m1 = self.lif1.init_leaky()
            m2 = self.lif2.init_leaky()
            out = []
            for t in range(spikes.shape[0]):
                s1, m1 = self.lif1(self.fc1(spikes[t]), m1)
                s2, m2 = self.lif2(self.fc2(s1), m2)
                out.append(s2)
            return torch.stack(out)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xtr_s = torch.from_numpy(rate_code(xtr, T_STEPS, seed + 1).astype(np.float32))
    ytr_t = torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(seed)
    for _epoch in range(30):
        perm = torch.randperm(len(ytr_t), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            counts = net(xtr_s[:, idx]).sum(0)
            loss = torch.nn.functional.cross_entropy(counts, ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    xte_s = rate_code(xte, T_STEPS, seed + 2)
    with torch.no_grad():
        counts = net(torch.from_numpy(xte_s.astype(np.float32))).sum(0).numpy()
    acc = float((counts.argmax(1) == yte).mean())
    return net, xte_s, acc


def export_snn(net, path: Path) -> None:
    import nir
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    class Step(torch.nn.Module):  # one time step with hidden state inside, the form snnTorch's exporter traces
        def __init__(self, n):
            super().__init__()
            self.fc1, self.fc2 = n.fc1, n.fc2
            kw = dict(reset_mechanism="zero", reset_delay=False, init_hidden=True)
            # per-neuron parameters, so the exported LIF nodes carry their shapes
            self.lif1 = snn.Leaky(beta=n.lif1.beta.expand(64).clone(), threshold=n.lif1.threshold.expand(64).clone(), **kw)
            self.lif2 = snn.Leaky(beta=n.lif2.beta.expand(10).clone(), threshold=n.lif2.threshold.expand(10).clone(), **kw)

        def forward(self, x):
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    graph = export_to_nir(Step(net), torch.zeros(64))
    meta = dict(graph.metadata or {})
    meta.update({
        "spikeforge.dt": DT,
        "spikeforge.reset": "zero",
        "spikeforge.reset_timing": "immediate",
        "spikeforge.threshold_cmp": ">",
        "spikeforge.source": "snntorch 1.0 Leaky(beta=0.9, reset_mechanism='zero', reset_delay=False)",
        "spikeforge.timesteps": T_STEPS,
    })
    graph = nir.NIRGraph(nodes=graph.nodes, edges=graph.edges, metadata=meta, type_check=False)
    from spikeforge import graph as G

    G.write(G.validate(graph), path)


def train_mlp(xtr, ytr, xte, yte, seed: int):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(seed)
    for _epoch in range(60):
        perm = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean())
    return net, acc


def export_mlp(net, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    w2, b2 = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             ((w1, "fc1.weight"), (b1, "fc1.bias"), (w2, "fc2.weight"), (b2, "fc2.bias"))]
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1),
    ]
    g = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    model = helper.make_model(g, producer_name="spikeforge-examples", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def build_lsm(xtr, ytr, seed: int):
    """Reservoir from a spec; readout fitted (ridge on spike rates) in float software on the training set."""
    import nir

    from spikeforge.backends.rram import ReservoirSpec, generate
    from spikeforge.backends.rram import readout as R
    from spikeforge.refsim import simulate

    spec = ReservoirSpec(size=200, inputs=64, outputs=10, p_connect=0.1, spectral_radius=0.9, dt=DT, seed=seed + 1)
    g = generate(spec)
    spikes = rate_code(xtr, T_STEPS, seed + 1).astype(np.float32)
    states = R.rates(simulate(g, {"input": spikes}, probes=True).activity["lif"])
    ro = R.train(states, ytr, "ridge", classes=10)
    w, b = ro.per_step(T_STEPS)
    g.nodes["readout"] = nir.Affine(weight=w, bias=b)
    meta = dict(g.metadata)
    meta.update({"spikeforge.timesteps": T_STEPS, "spikeforge.threshold_cmp": ">"})
    return nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata=meta, type_check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    xtr, xte, ytr, yte = digits_split(args.seed)
    snn_net, xte_s, snn_acc = train_snn(xtr, ytr, xte, yte, args.seed)
    mlp_net, mlp_acc = train_mlp(xtr, ytr, xte, yte, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    export_snn(snn_net, args.out / "digits_snn.nir")
    export_mlp(mlp_net, args.out / "digits_mlp.onnx")
    from spikeforge import graph as G

    lsm = build_lsm(xtr, ytr, args.seed)
    G.write(G.validate(lsm), args.out / "digits_lsm.nir")
    from spikeforge.npzio import save_npz

    save_npz(args.out / "digits_inputs.npz", {"input": xte_s, "labels": yte, "analog": xte})
    print(f"snnTorch SNN test accuracy ({T_STEPS} steps, rate-coded): {snn_acc:.4f}")
    print(f"ReLU MLP test accuracy (analog input): {mlp_acc:.4f}")


if __name__ == "__main__":
    main()
