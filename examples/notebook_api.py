# %% [markdown]
# # spikeforge from Python: compile an snnTorch model for Loihi 2 and SpiNNaker, verify, profile
#
# A notebook-style script (cells marked `# %%`, open it in Jupyter with jupytext or VS Code).
# No CLI call: everything goes through the `spikeforge` Python API. `tests/test_api.py` runs it in CI.
#
# The model is the bundled `digits_snn.nir`: an snnTorch 64-64-10 Leaky network trained on scikit-learn's
# 8x8 digits and exported with snnTorch's own NIR exporter (see examples/train_digits.py).

# %%
import sys
import warnings

import spikeforge as sf

model = sf.load(sf.bundled("digits_snn.nir"))  # a validated NIR graph
inputs = sf.bundled("digits_inputs.npz")  # (25, 360, 64) rate-coded test images + labels
print(sorted(model.nodes), model.metadata.get("spikeforge.dt"), "s per step")

# %% [markdown]
# Compile for two chips. Compile warnings arrive as `SpikeforgeWarning`s and stay on `artifact.warnings`.

# %%
artifacts = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", sf.SpikeforgeWarning)
    artifacts["loihi2"] = sf.compile(model, board="loihi2", bit_budget=100)
    artifacts["spinn3"] = sf.compile(model, board="spinn3")
for art in artifacts.values():
    print(art)  # in a notebook the cell shows an HTML table: board, passes' decisions, mapping, warnings
print(f"{len(caught)} SpikeforgeWarning(s) raised")

# %% [markdown]
# Verify each against the float model (same inputs on both sides), then profile energy and latency.

# %%
rows = []
for board, art in artifacts.items():
    res = sf.verify(art, inputs)
    prof = sf.profile(art, inputs)
    print(res)
    print(prof)
    rows.append((board, res.passed, res.metrics["accuracy_board"], prof.energy_total,
                 prof.latency_of("per_inference")))

# %%
print(f"{'board':<8} {'verified':<9} {'accuracy':>9} {'energy/inf':>12} {'latency/inf':>12}")
for board, ok, acc, energy, latency in rows:
    print(f"{board:<8} {ok!s:<9} {acc:>9.2%} {energy:>10.3g} J {latency:>10.3g} s")
if not all(ok for _, ok, *_ in rows):
    sys.exit("a board failed verification")
