"""Random Loihi programs for checking the emulator against Lava (tests, `make bench`).

Kept in the package (not tests/) so the benchmark and the slow property run share one generator.
"""

from __future__ import annotations

import numpy as np

from spikeforge.emulators.loihi import SIGN_MODES, Conn, Pop, Program, sign_mode_of


def random_program(rng: np.random.Generator, *, max_pops: int = 3, max_size: int = 5,
                   stress: bool = False, recurrent: bool = True) -> Program:
    """A random multi-layer network: input -> pop0 -> pop1 ..., with random recurrent/skip edges, delays,
    sign modes, weight exponents, weight bits, decays, thresholds and biases. `stress` picks large weights
    and exponents so u wraps around and v clips."""
    n_in = int(rng.integers(1, max_size + 1))
    n_pops = int(rng.integers(1, max_pops + 1))
    pops: dict[str, Pop] = {}
    for k in range(n_pops):
        n = int(rng.integers(1, max_size + 1))
        vth = int(rng.choice([rng.integers(0, 50), rng.integers(0, 2000), rng.integers(0, 131072)], p=[0.5, 0.35, 0.15]))
        pops[f"p{k}"] = Pop(
            name=f"p{k}", size=n,
            du=int(rng.choice([0, 4095, rng.integers(0, 4096)])),
            dv=int(rng.choice([0, 4095, rng.integers(0, 4096)])),
            vth=vth,
            bias_mant=rng.integers(-4096, 4096, n) * (rng.random(n) < 0.5),
            bias_exp=rng.integers(0, 8, n),
            bias_start=int(rng.integers(1, 4)),
        )
    edges = [("in", "p0")] + [(f"p{k}", f"p{k + 1}") for k in range(n_pops - 1)]
    for k in range(n_pops):
        if rng.random() < 0.4 and recurrent:
            edges.append((f"p{k}", f"p{k}"))                                   # self-recurrent
        if k > 0 and rng.random() < 0.3 and recurrent:
            edges.append((f"p{k}", f"p{int(rng.integers(0, k))}"))             # back edge
        if k > 1 and rng.random() < 0.3:
            edges.append(("in", f"p{k}"))                                       # skip
    conns = []
    for i, (src, dst) in enumerate(edges):
        n_src = n_in if src == "in" else pops[src].size
        n_dst = pops[dst].size
        hi = 300 if not stress else 400
        w = rng.integers(-hi, hi, (n_dst, n_src))
        form = rng.random()
        if form < 0.25:
            w = np.abs(w)
        elif form < 0.4:
            w = -np.abs(w)
        w = w * (rng.random(w.shape) < 0.8)
        mode = sign_mode_of(w) if rng.random() < 0.6 else str(rng.choice(SIGN_MODES))
        exp = int(rng.integers(4, 8)) if stress else int(rng.integers(-8, 8))
        delays = None
        if rng.random() < 0.4:
            delays = rng.integers(0, int(rng.choice([1, 3, 8])) + 1, w.shape)
        conns.append(Conn(name=f"c{i}", src=src, dst=dst, weights=w, weight_exp=exp,
                          num_weight_bits=int(rng.integers(1, 9)), sign_mode=mode, delays=delays,
                          sparse=bool(rng.random() < 0.3)))
    return Program(inputs={"in": n_in}, pops=pops, conns=conns)


def random_inputs(rng: np.random.Generator, prog: Program, steps: int, batch: int) -> dict[str, np.ndarray]:
    out = {}
    for name, n in prog.inputs.items():
        p = float(rng.choice([0.1, 0.4, 0.9]))
        out[name] = (rng.random((steps, batch, n)) < p).astype(np.int32)
    return out


def random_conv_program(rng: np.random.Generator, *, layers: int = 2) -> Program:
    """Input (C, H, W) -> Lava Conv -> LIF [-> Conv -> LIF]: random kernel size, stride, padding, dilation,
    groups, channels, weight bits (kernel values within +-(2^bits - 1), shifted by up to 7 as a baked
    weight_exp) and neuron parameters. Sums stay below 2^24, where Lava's float32 torch conv is exact."""
    from spikeforge.emulators.loihi import conv_matrix

    groups = int(rng.choice([1, 1, 2]))
    C = groups * int(rng.integers(1, 3))
    H, W = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    inputs = {"in": C * H * W}
    pops: dict[str, Pop] = {}
    conns: list[Conn] = []
    src, shape = "in", (C, H, W)
    for k in range(layers):
        c_in = shape[0]
        g = groups if c_in % groups == 0 else 1
        c_out = g * int(rng.integers(1, 3))
        kh, kw = int(rng.integers(1, min(4, shape[1]) + 1)), int(rng.integers(1, min(4, shape[2]) + 1))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
        dil = (1, 1) if rng.random() < 0.6 else (int(rng.integers(1, 3)), 1)
        if (kh - 1) * dil[0] + 1 > shape[1] + 2 * pad[0]:
            dil = (1, 1)
        bits = int(rng.integers(1, 9))
        kernel = rng.integers(-(2 ** bits - 1), 2 ** bits, (c_out, c_in // g, kh, kw)) << int(rng.integers(0, 8))
        kernel = kernel * (rng.random(kernel.shape) < 0.85)
        _, out = conv_matrix(kernel, shape, stride, pad, dil, g)
        n = int(np.prod(out))
        name = f"p{k}"
        pops[name] = Pop(name=name, size=n, du=int(rng.choice([4095, rng.integers(0, 4096)])),
                         dv=int(rng.choice([0, rng.integers(0, 4096)])), vth=int(rng.integers(1, 3000)),
                         bias_mant=rng.integers(-200, 200, n) * (rng.random(n) < 0.3),
                         bias_exp=rng.integers(0, 4, n), bias_start=int(rng.integers(1, 3)))
        conns.append(Conn(name=f"conv{k}", src=src, dst=name, weights=None, kernel=kernel,
                          conv={"in_shape": list(shape), "stride": list(stride), "padding": list(pad),
                                "dilation": list(dil), "groups": g}))
        src, shape = name, tuple(out)
    return Program(inputs=inputs, pops=pops, conns=conns)
