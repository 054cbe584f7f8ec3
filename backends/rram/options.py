"""`--set` keys the RRAM backend reads today (provisional: the RRAM engineer's file supersedes this one)."""

from __future__ import annotations

from typing import Any

from spikeforge.options import Opt


def spec(value: Any) -> Any:
    """A name ('off', 'typical') or a JSON object; `NonIdeal.parse` checks it."""
    if not isinstance(value, (str, dict)):
        raise ValueError(value)
    return value


OPTIONS: dict[str, Opt] = {
    "rram.mode": Opt(str, "programmed", "weights programmed from the graph, or a zero-shot random reservoir",
                      choices=("programmed", "zero_shot", "zero-shot")),
    "rram.nonideal": Opt(spec, "off", "non-idealities: off, typical or a JSON object"),
    "rram.sparsity": Opt(float, 0.0, "reservoir sparsity", min=0.0, max=1.0),
    "rram.input_activity": Opt(float, 0.1, "input row activity (fraction, default: the board's)", min=0.0, max=1.0),
    "rram.train": Opt(str, "", ".npz with input and labels to fit the readout"),
    "rram.readout": Opt(str, "ridge", "readout fitting method", choices=("ridge", "logistic", "contrastive")),
    "rram.readout_states": Opt(str, "chip", "states the readout is fitted on", choices=("chip", "both")),
}
