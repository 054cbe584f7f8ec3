"""`--set` keys of the photonic DFA backend (`backends/photonic/lower.py` DEFAULTS, plus the training data).

Each key is accepted bare (`--set epochs=10`, the historical spelling) and with the `photonic.` prefix.
"""

from __future__ import annotations

from spikeforge.options import Opt

_BASE: dict[str, Opt] = {
    "threshold": Opt(float, 0.01, "ternarisation threshold on |error| (fraction of the row maximum)", min=0.0),
    "ternary_mode": Opt(str, "stochastic", "error ternarisation rule", choices=("stochastic", "threshold")),
    "epochs": Opt(int, 30, "DFA training epochs", min=1, max=10_000),
    "batch": Opt(int, 32, "training batch size", min=1, max=1_000_000),
    "lr": Opt(float, 1e-3, "learning rate", min=0.0),
    "narrow": Opt(str, "bp", "layers narrower than the error", choices=("bp", "freeze", "dfa", "refuse")),
    "conv": Opt(str, "backprop", "convolutional front end", choices=("backprop", "freeze", "refuse", "dfa")),
    "init": Opt(str, "random", "initial weights", choices=("random", "graph")),
    "train_mode": Opt(str, "auto", "rate or time-stepped training", choices=("auto", "rate", "spiking")),
    "verify_epochs": Opt(int, 8, "epochs of the training run inside verify", min=1, max=10_000),
    "min_alignment": Opt(float, 0.05, "smallest accepted DFA alignment (cosine)"),
    "min_accuracy": Opt(float, 0.75, "smallest accepted verify accuracy (fraction)", min=0.0, max=1.0),
    "max_gap_to_dfa": Opt(float, 0.05, "largest accepted optical-vs-digital DFA accuracy gap", min=0.0, max=1.0),
    "max_samples": Opt(int, 2000, "training samples used", min=1, max=10_000_000),
    "train_data": Opt(str, "", ".npz with x and y for training and verify (default: sklearn digits)"),
}

OPTIONS: dict[str, Opt] = {**_BASE, **{f"photonic.{k}": v for k, v in _BASE.items()}}
