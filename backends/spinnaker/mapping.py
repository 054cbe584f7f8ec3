"""Partitioning, placement, keys and routing of a lowered program on a SpiNNaker board.

Follows sPyNNaker 7.x's flow in outline (partition -> place -> zoned keys -> routing trees -> tables),
with documented simplifications:

* Partition: each population in slices of `neurons_per_core` (board default 256; `extra
  'spinnaker.neurons_per_core'` overrides, an int or {population: int}).
* Delay slots per core: 2**(14 - ceil(log2(min(n, atoms_per_core))) - 1) (ring buffer <= 32 KiB with
  exc + inh); delays above the slot count need a delay-extension core per source slice (one adds 8 x slots),
  so the maximum delay is 9 x slots.
* Placement: cores filled chip by chip in board order; the Ethernet chip (0, 0) has one core fewer.
* Keys: zoned: [population | slice | neuron index | 4 colour bits]; one key/mask per slice.
* Routes: shortest hexagonal paths (diagonal first) from the source chip to every destination chip, merged
  into a tree. A chip needs a table entry unless the packet passes straight through with nothing delivered
  there (default routing). The compressed lower bound is the number of distinct routes per chip.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spikeforge.boardspec import Board
from spikeforge.errors import FitError

from .program import Program

# SpiNN-5 (48 chips): rows of the hexagonal board, (y, x_first, x_last)
_SPINN5_ROWS = ((0, 0, 4), (1, 0, 5), (2, 0, 6), (3, 0, 7), (4, 1, 7), (5, 2, 7), (6, 3, 7), (7, 4, 7))
_LINKS = {(1, 0): 0, (1, 1): 1, (0, 1): 2, (-1, 0): 3, (-1, -1): 4, (0, -1): 5}  # E NE N W SW S
_OPPOSITE = {0: 3, 1: 4, 2: 5, 3: 0, 4: 1, 5: 2}


def chip_layout(board: Board) -> list[tuple[int, int]]:
    layout = str(board.value("parameters.layout", "spinn3"))
    if layout == "spinn5":
        return [(x, y) for y, a, b in _SPINN5_ROWS for x in range(a, b + 1)]
    n = int(board.value("limits.chips"))
    side = int(math.ceil(math.sqrt(n)))
    return [(x, y) for y in range(side) for x in range(side)][:n]


def hex_path(a: tuple[int, int], b: tuple[int, int]) -> list[tuple[int, int]]:
    """Chips from a to b (inclusive) on a shortest path: diagonal moves first, then straight ones."""
    x, y = a
    dx, dy = b[0] - x, b[1] - y
    path = [(x, y)]
    if dx * dy > 0:
        k = min(abs(dx), abs(dy))
        s = 1 if dx > 0 else -1
        for _ in range(k):
            x, y = x + s, y + s
            path.append((x, y))
        dx, dy = b[0] - x, b[1] - y
    for _ in range(abs(dx)):
        x += 1 if dx > 0 else -1
        path.append((x, y))
    for _ in range(abs(dy)):
        y += 1 if dy > 0 else -1
        path.append((x, y))
    return path


def delay_slots(n: int, atoms_per_core: int, n_types: int = 2) -> int:
    m = max(1, min(n, atoms_per_core))
    e = 14 - math.ceil(math.log2(m)) - math.ceil(math.log2(n_types))
    return 2 ** e if e >= 0 else 0


def _bits(n: int) -> int:
    return max(0, math.ceil(math.log2(max(1, n))))


def map_program(prog: Program, board: Board, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    extra = dict(extra or {})
    default_apc = int(board.value("limits.neurons_per_core"))
    apc_opt = extra.get("spinnaker.neurons_per_core")
    chips = chip_layout(board)
    cores_per_chip = int(board.value("limits.app_cores_per_chip"))
    eth_cores = int(board.value("limits.app_cores_ethernet_chip"))
    cap = [eth_cores if i == 0 else cores_per_chip for i in range(len(chips))]
    total_cap = sum(cap)
    dtcm = int(board.value("limits.dtcm_bytes"))
    dtcm_sys = int(board.value("limits.dtcm_reserved_bytes"))
    per_neuron = {"IF_curr_exp": int(board.value("limits.dtcm_bytes_per_neuron_exp")),
                  "IF_curr_delta": int(board.value("limits.dtcm_bytes_per_neuron_delta"))}

    # ---- partition ------------------------------------------------------------------------------------
    pops: dict[str, dict[str, Any]] = {}
    for p in prog.populations:
        apc = default_apc
        if isinstance(apc_opt, dict):
            apc = int(apc_opt.get(p.name, apc_opt.get(p.node, default_apc)))
        elif apc_opt is not None:
            apc = int(apc_opt)
        if apc < 1:
            raise FitError(f"neurons per core must be >= 1 (got {apc})", node=p.node)
        n_cores = math.ceil(p.size / apc)
        slots = delay_slots(p.size, apc) if not p.is_source else 0
        pops[p.name] = {"atoms_per_core": apc, "cores": n_cores, "slots": slots, "kind": p.kind, "size": p.size}
        if not p.is_source:
            n_core = min(p.size, apc)
            ring = slots * 2 * n_core * 2
            need = dtcm_sys + n_core * per_neuron[p.kind] + ring
            pops[p.name]["dtcm_bytes"] = need
            if slots == 0 or need > dtcm:
                short = need - dtcm
                raise FitError(
                    f"population '{p.name}' ({p.size} {p.kind} neurons) does not fit a core: {n_core} neurons per "
                    f"core need {need} bytes of DTCM (state {n_core * per_neuron[p.kind]}, ring buffer {ring}, "
                    f"system {dtcm_sys}) of {dtcm}: short by {max(short, 0)} bytes",
                    node=p.node,
                    hint=f"use fewer neurons per core (extra 'spinnaker.neurons_per_core', e.g. {default_apc})")

    # ---- delays and delay extensions -----------------------------------------------------------------
    proj_info = []
    ext_needed: dict[str, int] = {}
    for pr in prog.projections:
        dmax = int(pr.delay.max()) if pr.delay.size else 1
        slots = pops[pr.post]["slots"]
        if dmax > 9 * slots:
            raise FitError(
                f"projection '{pr.name}' needs a delay of {dmax} steps; population '{pr.post}' has {slots} on-core "
                f"delay slots, so at most {9 * slots} steps with one delay extension: short by {dmax - 9 * slots} "
                "steps", node=pr.post,
                hint="fewer neurons per core on the target (more slots), a larger dt, or shorter delays")
        if dmax > slots:
            ext_needed[pr.pre] = max(ext_needed.get(pr.pre, 0), dmax)
        proj_info.append({"name": pr.name, "max_delay": dmax, "extension": dmax > slots})

    # ---- cores and placement ------------------------------------------------------------------------
    cores: list[dict[str, Any]] = []
    for p in prog.populations:
        info = pops[p.name]
        for i in range(info["cores"]):
            lo, hi = i * info["atoms_per_core"], min(p.size, (i + 1) * info["atoms_per_core"])
            cores.append({"pop": p.name, "slice": i, "lo": lo, "hi": hi, "kind": p.kind})
            if p.name in ext_needed:
                cores.append({"pop": p.name, "slice": i, "lo": lo, "hi": hi, "kind": "DelayExtension"})
    if len(cores) > total_cap:
        used = 0
        culprit = prog.populations[-1].name
        for c in cores:
            used += 1
            if used > total_cap:
                culprit = c["pop"]
                break
        need = len(cores)
        per_pop = ", ".join(f"{k}: {v['cores']}" for k, v in pops.items())
        if ext_needed:
            per_pop += f", delay extensions: {sum(pops[k]['cores'] for k in ext_needed)}"
        raise FitError(
            f"population '{culprit}' cannot be placed: the program needs {need} application cores "
            f"({per_pop}) and "
            f"board '{board.name}' has {total_cap} ({len(chips)} chips x {cores_per_chip}, {eth_cores} on the "
            f"Ethernet chip): short by {need - total_cap} cores",
            node=next((p.node for p in prog.populations if p.name == culprit), None),
            hint="use a bigger board (spinn5), more neurons per core (extra 'spinnaker.neurons_per_core'), "
                 "or prune the model")
    chip_i, used_on = 0, 0
    for c in cores:
        while used_on >= cap[chip_i]:
            chip_i += 1
            used_on = 0
        c["chip"] = list(chips[chip_i])
        c["core"] = used_on + (2 if chip_i == 0 else 1)  # core 0: monitor (SCAMP); chip 0 also a gatherer
        used_on += 1

    # ---- keys ---------------------------------------------------------------------------------------
    senders = [c for c in cores if c["kind"] != "DelayExtension"] + [c for c in cores if c["kind"] == "DelayExtension"]
    app_ids = {}
    for c in senders:
        app_ids.setdefault((c["pop"], c["kind"] == "DelayExtension"), len(app_ids))
    n_bits = _bits(max(c["hi"] - c["lo"] for c in cores)) + 4
    mv_bits = _bits(max(v["cores"] for v in pops.values()))
    app_bits = _bits(len(app_ids))
    if n_bits + mv_bits + app_bits > 32:
        raise FitError(f"routing keys need {n_bits + mv_bits + app_bits} bits (> 32)",
                       hint="fewer populations or fewer cores per population")
    mask = (0xFFFFFFFF << n_bits) & 0xFFFFFFFF
    for c in senders:
        c["key"] = (app_ids[(c["pop"], c["kind"] == "DelayExtension")] << (mv_bits + n_bits)) | (c["slice"] << n_bits)
        c["mask"] = mask

    # ---- routing trees --------------------------------------------------------------------------------
    by_pop: dict[str, list[dict[str, Any]]] = {}
    for c in cores:
        if c["kind"] != "DelayExtension":
            by_pop.setdefault(c["pop"], []).append(c)
    ext_core = {(c["pop"], c["slice"]): c for c in cores if c["kind"] == "DelayExtension"}
    # which target cores each source slice reaches (directly or through its delay extension)
    routes: dict[int, set[int]] = {}
    core_id = {id(c): i for i, c in enumerate(cores)}
    fan_pairs: dict[tuple[int, int], int] = {}
    for pr in prog.projections:
        pre_apc = pops[pr.pre]["atoms_per_core"]
        post_apc = pops[pr.post]["atoms_per_core"]
        slots = pops[pr.post]["slots"]
        pairs = np.unique(np.stack([pr.pre_idx // pre_apc, pr.post_idx // post_apc,
                                    (pr.delay > slots).astype(np.int64)]), axis=1)
        for ps, qs, via_ext in pairs.T:
            src = by_pop[pr.pre][int(ps)]
            dst = by_pop[pr.post][int(qs)]
            s_id = core_id[id(ext_core[(pr.pre, int(ps))])] if via_ext else core_id[id(src)]
            routes.setdefault(s_id, set()).add(core_id[id(dst)])
            if via_ext:
                routes.setdefault(core_id[id(src)], set()).add(s_id)
            fan_pairs[(core_id[id(src)], core_id[id(dst)])] = 1
    entries: dict[tuple[int, int], list[tuple[int, frozenset]]] = {}
    hop_sum, hop_n = 0, 0
    for s_id, dsts in routes.items():
        src_chip = tuple(cores[s_id]["chip"])
        out_links: dict[tuple[int, int], set[int]] = {}
        in_link: dict[tuple[int, int], int] = {}
        local: dict[tuple[int, int], set[int]] = {}
        for d_id in dsts:
            dchip = tuple(cores[d_id]["chip"])
            path = hex_path(src_chip, dchip)
            hop_sum, hop_n = hop_sum + len(path), hop_n + 1
            for a, b in zip(path, path[1:]):
                link = _LINKS[(b[0] - a[0], b[1] - a[1])]
                out_links.setdefault(a, set()).add(link)
                in_link[b] = _OPPOSITE[link]
            local.setdefault(dchip, set()).add(int(cores[d_id]["core"]))
        for chip in set(out_links) | set(local):
            outs = out_links.get(chip, set())
            here = local.get(chip, set())
            straight = (chip != src_chip and not here and len(outs) == 1
                        and chip in in_link and next(iter(outs)) == _OPPOSITE[in_link[chip]])
            if straight:
                continue
            route = frozenset({f"L{x}" for x in outs} | {f"C{x}" for x in here})
            entries.setdefault(chip, []).append((cores[s_id]["key"], route))
    limit = int(board.value("limits.router_entries"))
    table = {}
    for chip, ents in sorted(entries.items()):
        distinct = len({r for _, r in ents})
        table[f"{chip[0]},{chip[1]}"] = {"entries": len(ents), "compressed_bound": distinct}
        if distinct > limit:
            raise FitError(
                f"chip ({chip[0]}, {chip[1]}) needs {len(ents)} routing entries, at least {distinct} after "
                f"compression, of {limit}: short by {distinct - limit} entries",
                hint="fewer neurons per core is worse; use more neurons per core or prune connections")
    max_entries = max((v["entries"] for v in table.values()), default=0)

    # ---- SDRAM: synaptic matrices (3 header words + 1 word per synapse per row) + neuron data ----------
    sdram: dict[str, int] = {}
    for pr in prog.projections:
        post_apc = pops[pr.post]["atoms_per_core"]
        for q in np.unique(pr.post_idx // post_apc):
            c = by_pop[pr.post][int(q)]
            sel = (pr.post_idx // post_apc) == q
            rows = len(np.unique(pr.pre_idx[sel]))
            key = f"{c['chip'][0]},{c['chip'][1]}"
            sdram[key] = sdram.get(key, 0) + 4 * (3 * rows + int(sel.sum()))
    sdram_limit = int(board.value("limits.sdram_bytes_per_chip")) - int(board.value("limits.sdram_reserved_bytes"))
    for key, used in sdram.items():
        if used > sdram_limit:
            raise FitError(f"chip ({key}) needs {used} bytes of SDRAM for synaptic matrices of {sdram_limit}: "
                           f"short by {used - sdram_limit} bytes", hint="spread populations (fewer neurons per "
                           "core) or prune connections")
    chips_used = sorted({tuple(c["chip"]) for c in cores})
    return {
        "populations": pops,
        "cores": cores,
        "n_cores": len(cores),
        "n_chips": len(chips_used),
        "chips_used": [list(c) for c in chips_used],
        "delay_extensions": sorted(ext_needed),
        "projections": proj_info,
        "key_bits": {"population": app_bits, "slice": mv_bits, "neuron_and_colour": n_bits},
        "routing": {"tables": table, "max_entries": max_entries, "limit": limit,
                    "needs_compression": max_entries > limit},
        "sdram_bytes": sdram,
        "core_pairs": len(fan_pairs),
        # routers a packet passes on its way to one receiving core (1 = delivered on the source chip)
        "mean_route_chips": hop_sum / hop_n if hop_n else 1.0,
    }
