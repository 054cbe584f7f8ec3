"""The `--set` keys the photonic backend reads (each also accepted with a `photonic.` prefix).

Why: a misspelled key must be refused, not ignored (see `spikeforge.options`). The keys and defaults
are those of the DFA training program (`lower.DEFAULTS`) plus the training data file.
"""

from __future__ import annotations

from spikeforge.options import Opt

_HELP = {
    "threshold": ("ternarisation threshold of the output error (fraction of max |e|)", 0.0, 1.0, None),
    "ternary_mode": ("error ternarisation", None, None, ("stochastic", "threshold")),
    "epochs": ("training epochs of the emitted program", 1, 10_000, None),
    "batch": ("training batch size", 1, 65_536, None),
    "lr": ("learning rate", 0.0, 10.0, None),
    "narrow": ("layers narrower than the classes", None, None, ("bp", "freeze", "dfa", "refuse")),
    "conv": ("convolutional front end", None, None, ("backprop", "freeze", "refuse")),
    "init": ("initial weights", None, None, ("random", "graph")),
    "train_mode": ("how LIF graphs train", None, None, ("auto", "spiking", "rate")),
    "verify_epochs": ("epochs of verify's training runs", 1, 1_000, None),
    "min_alignment": ("verify: smallest cos(DFA update, BP gradient)", -1.0, 1.0, None),
    "min_accuracy": ("verify: smallest optical DFA test accuracy (fraction)", 0.0, 1.0, None),
    "max_gap_to_dfa": ("verify: largest accuracy gap digital DFA - optical DFA (fraction)", 0.0, 1.0, None),
    "max_gap_to_bp": ("verify: largest accuracy gap backprop - optical DFA (fraction)", 0.0, 1.0, None),
    "max_samples": ("training samples embedded in the artifact", 1, 10_000_000, None),
}


def _options() -> dict[str, Opt]:
    from .lower import DEFAULTS

    out: dict[str, Opt] = {}
    for key, default in DEFAULTS.items():
        help_, lo, hi, choices = _HELP[key]
        opt = Opt(type(default), default, help_, min=lo, max=hi, choices=choices)
        out[key] = out[f"photonic.{key}"] = opt
    data = Opt(str, "", "training data .npz with arrays x (N, inputs) and y (N,)")
    out["train_data"] = out["photonic.train_data"] = data
    return out


OPTIONS: dict[str, Opt] = _options()
