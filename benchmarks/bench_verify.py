"""What verify's spike-level gates cost on top of the two simulations they compare.

Why: verify runs in every CI job. Its metrics (one-to-one +-k matching, van Rossum, best-shift
estimate, stage attribution, hidden-layer probes) must stay cheap next to running the float model and
the board. Work: the bundled digits SNN, 360 samples x 25 steps, on cpu-reference and spinn5. Baseline:
the reference simulator plus the board's emulator on the same inputs (what any verify must run).
Checked equal: verify's board trace is the standalone emulator's trace.
"""

from __future__ import annotations

import numpy as np
from _common import Report, timeit

from spikeforge import models
from spikeforge.inputs import load_inputs
from spikeforge.interfaces import CompileOptions
from spikeforge.npzio import load_npz
from spikeforge.pipeline import compile_model
from spikeforge.registry import get_backend
from spikeforge.verify import reference_trace, verify


def measure(board: str, rep: Report) -> None:
    data = models.path("digits_inputs.npz")
    art = compile_model(models.path("digits_snn.nir"), board, CompileOptions(timesteps=25), calibration=load_npz(data))
    x, labels = load_inputs(data, art.reference)
    be = get_backend(art.backend)

    def sims():
        reference_trace(art, x)
        return be.emulator().run(art, x)

    t_sims, trace = timeit(sims, repeats=5)
    t_verify, res = timeit(lambda: verify(art, x, labels, backend=be), repeats=5)
    for k, v in trace.outputs.items():
        np.testing.assert_array_equal(np.asarray(res.board_trace.outputs[k]), np.asarray(v))
    ratio = t_verify.median / t_sims.median
    rep.rows.append({"board": board, "simulations_s": t_sims.to_dict(), "verify_s": t_verify.to_dict(),
                     "ratio": ratio, "passed": res.passed})
    print(f"{board}: simulations {t_sims.fmt()}, verify {t_verify.fmt()}, ratio {ratio:.2f}", flush=True)
    rep.target(f"{board}: verify time / simulations time", ratio, 2.0, higher_is_better=False)


def main() -> None:
    rep = Report("verify")
    for board in ("cpu-reference", "spinn5"):
        measure(board, rep)
    rep.save()


if __name__ == "__main__":
    main()
