"""Cost of optical DFA training: frames, OPU time, energy and host-link time, next to the same projection done
digitally on the board's reference GPU and CPU.

    frames/step   = 4 x non-zero error vectors + 4 (the all-ones centering vector)
    frame time    = max(timing.frame_time, ROI read time = pixels x bytes / host link bandwidth)
    OPU time      = frames x frame time
    OPU energy    = frames x energy.frame            (energy.frame = P / f, whatever the size)
    host link     = frames x (DMD pattern bytes + ROI bytes) / bandwidth
    digital       = 2 x C x P FLOPs per error vector (e B), on the GPU at peak and on one CPU core
    host backprop = per sample, 2 x MACs of delta_0 W_0 (into the conv front end) + per backprop-trained conv
                    2 x MACs (weight gradient) + 2 x MACs (input gradient, except the first conv): host work
                    that the OPU does not do (conv=backprop); frozen convs and the head cost no backward FLOPs

Only the DFA-trained layers ("dfa" roles) have camera columns, so frames, the ROI and the projection width
count only them; a program without feedback points costs no frames.
"""

from __future__ import annotations

import math

from spikeforge.artifact import Artifact
from spikeforge.boards import Board, get_board
from spikeforge.interfaces import CostModel, Profile, ProfileItem, Trace


def epoch_figures(program: dict, board: Board, n_samples: int, nonzero_fraction: float | None = None) -> dict:
    """Frames, times and energies for one epoch of `n_samples` (see module docstring for the formulas)."""
    proj = program["projection"]
    batch = int(program["training"]["batch"])
    steps = math.ceil(n_samples / batch)
    frac = nonzero_fraction
    if frac is None:
        frac = float(program["exposure"]["calibrated"].get("nonzero_error_fraction", 1.0))
    vectors = n_samples * frac if proj["n_out"] > 0 else 0.0  # no DFA layer: nothing goes to the OPU
    fpv = int(program["frames_per_vector"])
    frames = fpv * vectors + int(program["frames_per_step_overhead"]) * steps if proj["n_out"] > 0 else 0
    bw = float(board.value("timing.host_link_bandwidth"))
    px_bytes = max(1, math.ceil(int(board.value("arithmetic.camera_bits")) / 8))
    read_s = proj["n_out"] * px_bytes / bw
    t_frame = max(float(board.value("timing.frame_time")), read_s)
    dmd_bytes = math.ceil(int(board.value("limits.dmd_mirrors")) / 8)
    flops = 2.0 * program["n_classes"] * proj["n_out"] * vectors
    bp_flops = host_backprop_flops(program) * n_samples
    return {
        "host_bp_flops": bp_flops,
        "host_bp_cpu_time": bp_flops / float(board.value("parameters.cpu_flops")),
        "steps": steps, "vectors": vectors, "frames": frames, "frame_time": t_frame, "read_time": read_s,
        "opu_time": frames * t_frame, "opu_energy": frames * float(board.value("energy.frame")),
        "link_time": frames * (dmd_bytes + proj["n_out"] * px_bytes) / bw,
        "flops": flops,
        "gpu_time": flops / float(board.value("parameters.gpu_flops")),
        "gpu_energy": flops * float(board.value("parameters.gpu_power")) / float(board.value("parameters.gpu_flops")),
        "cpu_time": flops / float(board.value("parameters.cpu_flops")),
        "cpu_energy": flops * float(board.value("parameters.cpu_flop_energy")),
    }


def host_backprop_flops(program: dict) -> float:
    """Backward FLOPs per sample the host spends on backprop-trained conv layers (0 when frozen or absent)."""
    fe = program.get("front_end")
    if not fe:
        return 0.0
    convs = [op for op in fe["ops"] if op["kind"] == "conv"]
    if not any(op["role"] == "bp" for op in convs):
        return 0.0
    head = next(d for d in program["layers"])
    flops = 2.0 * head["in"] * head["out"]  # delta_0 W_0: the gradient entering the front end
    first = convs[0]["name"]
    for op in convs:
        if op["role"] == "bp":
            flops += 2.0 * op["macs"] + (0.0 if op["name"] == first else 2.0 * op["macs"])
    return flops


class PhotonicCostModel(CostModel):
    def profile(self, artifact: Artifact, trace: Trace) -> Profile:
        board = get_board(artifact.board)
        program = artifact.meta["program"]
        n_train = int(artifact.arrays["data/x_train"].shape[0]) if "data/x_train" in artifact.arrays \
            else int(artifact.meta.get("epoch_samples", trace.batch))
        ep = epoch_figures(program, board, n_train)
        c = board.cite
        src_t = [c("timing.frame_time"), c("timing.host_link_bandwidth"), c("arithmetic.camera_bits")]
        src_e = [c("energy.frame"), c("energy.power"), c("timing.frame_rate")]
        gpu = [c("parameters.gpu_flops"), c("parameters.gpu_power")]
        cpu = [c("parameters.cpu_flops"), c("parameters.cpu_flop_energy")]
        p = Profile(board=board.name)
        # "per inference" for this board = what the OPU adds per training sample (inference itself is digital)
        p.energy.append(ProfileItem("opu_dfa_per_sample", ep["opu_energy"] / n_train, "J",
                                    "opu_energy_per_epoch / epoch_samples (DFA backward projection per training sample)",
                                    src_e))
        p.latency.append(ProfileItem("opu_dfa_per_sample", ep["opu_time"] / n_train, "s",
                                     "opu_time_per_epoch / epoch_samples", src_t))
        p.latency.append(ProfileItem("host_link_per_sample", ep["link_time"] / n_train, "s",
                                     "host_link_time_per_epoch / epoch_samples", src_t))
        r = p.resources
        r.append(ProfileItem("epoch_samples", n_train, "samples", "training samples per epoch (embedded data)", []))
        r.append(ProfileItem("frames_per_epoch", ep["frames"], "frames",
                             f"4 x {ep['vectors']:.0f} non-zero error vectors + 4 x {ep['steps']} steps, for the DFA "
                             f"layers {program['feedback_points']} only", []))
        r.append(ProfileItem("opu_time_per_epoch", ep["opu_time"], "s",
                             f"frames x frame time ({ep['frame_time'] * 1e6:.0f} us; ROI read {ep['read_time'] * 1e6:.1f} us)",
                             src_t))
        r.append(ProfileItem("opu_energy_per_epoch", ep["opu_energy"], "J", "frames x energy.frame (P/f)", src_e))
        r.append(ProfileItem("host_link_time_per_epoch", ep["link_time"], "s",
                             "frames x (DMD pattern + camera ROI bytes) / bandwidth", src_t))
        r.append(ProfileItem("digital_flops_per_epoch", ep["flops"], "FLOP", "2 x classes x projection width x vectors", []))
        r.append(ProfileItem("digital_gpu_time_per_epoch", ep["gpu_time"], "s", "FLOPs / gpu_flops (peak)", gpu))
        r.append(ProfileItem("digital_gpu_energy_per_epoch", ep["gpu_energy"], "J", "FLOPs x gpu_power / gpu_flops", gpu))
        r.append(ProfileItem("digital_cpu_time_per_epoch", ep["cpu_time"], "s", "FLOPs / cpu_flops", cpu))
        r.append(ProfileItem("digital_cpu_energy_per_epoch", ep["cpu_energy"], "J", "FLOPs x cpu_flop_energy", cpu))
        if program.get("front_end"):
            roles = {op["name"]: op["role"] for op in program["front_end"]["ops"] if op["kind"] == "conv"}
            r.append(ProfileItem("host_backprop_flops_per_epoch", ep["host_bp_flops"], "FLOP",
                                 "samples x (2 x head in x out + per backprop conv 2 x MACs weight grad + 2 x MACs input "
                                 f"grad except the first conv); conv roles {roles}, not on the OPU", []))
            r.append(ProfileItem("host_backprop_cpu_time_per_epoch", ep["host_bp_cpu_time"], "s",
                                 "host_backprop_flops / cpu_flops", [c("parameters.cpu_flops")]))
        ratio = ep["opu_energy"] / ep["gpu_energy"] if ep["gpu_energy"] else float("inf")
        j_per_flop = float(board.value("parameters.gpu_power")) / float(board.value("parameters.gpu_flops"))
        crossover = int(program["frames_per_vector"]) * float(board.value("energy.frame")) / (2.0 * j_per_flop)
        p.notes.append(
            f"per epoch: OPU {ep['frames']:.0f} frames, {ep['opu_time']:.3g} s, {ep['opu_energy']:.3g} J vs the same "
            f"projection digitally: {ep['gpu_energy']:.3g} J on the GPU (OPU/GPU = {ratio:.3g}). A frame costs the same "
            f"whatever the size, so the OPU's energy per vector matches the GPU's at classes x projection width = "
            f"{crossover:.3g} (this program: {program['n_classes'] * program['projection']['n_out']})")
        p.notes.extend(board.notes)
        return p
