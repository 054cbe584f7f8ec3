"""A zero-shot liquid state machine on RRAM macros, end to end, on sklearn digits as spike trains.

    python examples/rram_lsm_digits.py [--size 200] [--out /tmp/rram_lsm]

1. generate a reservoir from a spec and measure its dynamics (mean rate, branching ratio, separation);
2. compile it in zero-shot mode (weights = formed RRAM conductances) with typical non-idealities;
3. train the digital readout on emulated states (ridge), save the artifact;
4. compare test accuracy with the same reservoir in float software; print the energy profile.
"""

from __future__ import annotations

import argparse

import numpy as np

from spikeforge.backends.rram import ReservoirSpec, RRAMBackend, dynamics, fit_readout, generate
from spikeforge.backends.rram import readout as R
from spikeforge.backends.rram.device import load_board
from spikeforge.backends.rram.tasks import digits_spikes
from spikeforge.emulators.rram import RRAMEmulator
from spikeforge.interfaces import CompileOptions
from spikeforge.refsim import simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--radius", type=float, default=0.9)
    ap.add_argument("--readout", default="ridge", choices=["ridge", "logistic", "contrastive"])
    ap.add_argument("--out", default="/tmp/rram_lsm")
    a = ap.parse_args()

    xtr, ytr, xte, yte = digits_spikes(timesteps=30)
    spec = ReservoirSpec(size=a.size, inputs=64, outputs=10, p_connect=0.1, spectral_radius=a.radius, seed=1)
    g = generate(spec)
    d = dynamics(g, xte[:, :50])
    print(f"reservoir {a.size} LIF, rho={a.radius}: mean rate {d['mean_rate']:.3f}, "
          f"branching ratio {d['branching_ratio']:.2f}, separation {d['separation']:.3f}")

    def f_sw(x: np.ndarray) -> np.ndarray:
        return R.rates(simulate(g, x, probes=True).activity["lif"])

    sw = R.accuracy(R.train(f_sw(xtr), ytr, a.readout, classes=10), f_sw(xte), yte)

    board = load_board()
    opts = CompileOptions(seed=3, extra={"rram.mode": "zero_shot", "rram.nonideal": "typical"})
    art = RRAMBackend().lower(g, board, opts)
    emu = RRAMEmulator()
    ro = fit_readout(art, xtr, ytr, method=a.readout, emulator=emu)
    trace = emu.run(art, {"input": xte}, probes=True)
    hw = R.accuracy(ro, R.rates(trace.states["lif.spikes"]), yte)
    path = art.save(a.out)
    print(f"artifact: {path} ({art.meta['macros']} macros, {art.meta['cell_utilisation']:.1%} of cells used)")
    print(f"test accuracy: float software {sw:.3f}, zero-shot RRAM (typical non-idealities) {hw:.3f}")

    prof = RRAMBackend().cost_model().profile(art, trace)
    for item in prof.energy + prof.latency + prof.resources:
        print(f"  {item.component:>22}: {item.value:.4g} {item.unit}   [{item.formula}]")


if __name__ == "__main__":
    main()
