"""Every `--set rram.*` key the RRAM backend reads, with its type, default and range.

Why: a misspelled non-ideality (`rram.adc_bit=4`) must be refused, not silently ignored. Keys of
the programmed-weight mode switch one non-ideality each (0 = off), so a user can see what each costs.
"""

from __future__ import annotations

import json
from typing import Any

from spikeforge.options import Opt


def nonideal_spec(value: Any) -> str:
    """`rram.nonideal` arrives as a word or, from the CLI's JSON parsing, as a dict: keep it as text."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


nonideal_spec.__name__ = "'off' | 'typical' | JSON dict"

OPTIONS: dict[str, Opt] = {
    # --- which mode -------------------------------------------------------------------------------
    "rram.mode": Opt(str, "auto", "auto (chosen from the graph and printed), programmed (write-verify the trained "
                     "weights of any graph), reservoir (zero-shot LSM on formed conductances); zero_shot is an "
                     "alias of reservoir", choices=("auto", "programmed", "reservoir", "zero_shot")),
    # --- reservoir (LSM) mode, as before ------------------------------------------------------------
    "rram.reservoir_weights": Opt(str, "programmed", "LSM weights: programmed targets or zero_shot formed cells",
                                  choices=("programmed", "zero_shot")),
    "rram.nonideal": Opt(nonideal_spec, "off", "LSM non-idealities: 'off', 'typical' or a JSON dict of fields"),
    "rram.sparsity": Opt(float, None, "zero-shot formed fraction of cells (default: the graph's density)",
                         min=0.0, max=1.0),
    "rram.train": Opt(str, None, "path to an .npz (input, labels) to train the LSM readout during compile"),
    "rram.readout": Opt(str, "ridge", "LSM readout training method", choices=("ridge", "logistic", "contrastive")),
    "rram.readout_states": Opt(str, "chip", "train the LSM readout on chip states or chip + reference states",
                               choices=("chip", "both")),
    "rram.input_activity": Opt(float, None, "expected input-row activity used to size input tiles' ADC range",
                               min=0.0, max=1.0),
    # --- programmed-weight mode: one switch per non-ideality (0 = off) --------------------------------
    "rram.noise": Opt(str, "default", "programmed mode: 'default' (every effect at the board's value) or 'off' "
                      "(ideal crossbar; the keys below still override)", choices=("default", "off")),
    "rram.levels": Opt(int, None, "conductance levels per cell for write-verify targets (0 = continuous)",
                       min=0, max=4096),
    "rram.prog_noise": Opt(float, None, "write-verify residual error, as a multiple of the published "
                           "Wan et al. 2022 distribution (1 = published, 0 = off)", min=0.0, max=20.0),
    "rram.drift_time": Opt(float, None, "seconds since programming (power-law relaxation; 0 = off, read at 1 s)",
                           min=0.0, max=3.2e8),
    "rram.read_noise": Opt(float, None, "per-read noise, relative std per cell (0 = off)", min=0.0, max=1.0),
    "rram.r_wire": Opt(float, None, "wire resistance per cell pitch in ohm for IR drop (0 = off)", min=0.0, max=1e3),
    "rram.adc_bits": Opt(int, None, "column ADC resolution in bits (0 = ideal readout)", min=0, max=16),
    "rram.dac_bits": Opt(int, None, "input DAC resolution in bits for graded inputs (0 = ideal; spikes are "
                         "1-bit and exact)", min=0, max=16),
    "rram.replicas": Opt(int, 0, "copies of every weight matrix on separate macros, their reads averaged "
                         "(0 = auto: as many as free macros allow, at most 4)", min=0, max=64),
    "rram.slices": Opt(int, 0, "differential pairs per weight: 1, or 2 (the second holds the first's rounding "
                       "residual; bit slicing); 0 = auto: 2 when the levels are finite and it fits the macros",
                       min=0, max=2),
    "rram.copies": Opt(int, 0, "copies of each weight on a tile's idle rows (summed in the column current) and "
                       "idle columns (averaged) of the same macro, multi-device synapses (Boybat et al. 2018); "
                       "0 = auto (as many as fit, at most 32), 1 = one copy", min=0, max=64),
    "rram.calibrate": Opt(bool, True, "per-column gain calibration from --calibration data (programmed mode)"),
    "rram.calibrate_offset": Opt(str, "progressive", "with rram.calibrate: per-column offsets re-centring each "
                                 "column's mean on the calibration data, layer by layer on the chip's activity "
                                 "(progressive), per layer on its own inputs (local), or none (off)",
                                 choices=("progressive", "local", "off")),
}
