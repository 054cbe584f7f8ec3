"""Parser-level check of an emitted JoSIM deck: what a simulator would reject or silently mis-wire.

Why: JoSIM does not build here (docs/sfq.md), so the deck is checked structurally instead:
every instantiated subcircuit is defined with the right pin count, every net (except ground) is driven
exactly once and read at least once (pin directions come from the `*$ dir` line of each `.subckt`),
every PWL source has strictly rising times, and no card starts with a control keyword other than the
ones the emitter writes. Returns a list of problems (empty = clean).
"""

from __future__ import annotations

import re

_ALLOWED_DOT = (".include", ".model", ".subckt", ".ends", ".tran", ".print", ".end")
_PWL = re.compile(r"pwl\(([^)]*)\)", re.IGNORECASE)
_UNIT = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3}


def _num(tok: str) -> float:
    t = tok.strip().lower()
    if t and t[-1] in _UNIT:
        return float(t[:-1]) * _UNIT[t[-1]]
    return float(t)


def parse_subckts(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """`.subckt NAME pins` blocks -> (pins, directions)."""
    subs: dict[str, tuple[list[str], list[str]]] = {}
    cur: str | None = None
    for ln in text.splitlines():
        parts = ln.split()
        if not parts:
            continue
        if parts[0].lower() == ".subckt":
            cur = parts[1]
            subs[cur] = (parts[2:], [])
        elif parts[0] == "*$" and len(parts) > 1 and parts[1] == "dir" and cur is not None:
            subs[cur][1].extend(parts[2:])
        elif parts[0].lower() == ".ends":
            cur = None
    return subs


def check_deck(top: str, library: str) -> list[str]:
    """Problems found in the top-level deck `top` given the included cell library text."""
    problems: list[str] = []
    subs = parse_subckts(library)
    for name, (pins, dirs) in subs.items():
        if len(dirs) != len(pins):
            problems.append(f"subckt {name}: {len(pins)} pins but {len(dirs)} directions")
    drivers: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}

    def drive(net: str, who: str) -> None:
        if net != "0":
            drivers.setdefault(net, []).append(who)

    def read(net: str, who: str) -> None:
        if net != "0":
            readers.setdefault(net, []).append(who)

    for n, ln in enumerate(top.splitlines(), 1):
        parts = ln.split()
        if not parts or parts[0].startswith("*"):
            continue
        head = parts[0]
        low = head.lower()
        if low.startswith("."):
            if low not in _ALLOWED_DOT:
                problems.append(f"line {n}: unexpected control card {head!r}")
            if low == ".print":
                for m in re.finditer(r"V\(([^)]+)\)", ln):
                    read(m.group(1), f"line {n}")
            continue
        kind = low[0]
        if kind == "x":
            sub = parts[-1]
            nets = parts[1:-1]
            if sub not in subs:
                problems.append(f"line {n}: {head} instantiates undefined subcircuit {sub!r}")
                continue
            pins, dirs = subs[sub]
            if len(nets) != len(pins):
                problems.append(f"line {n}: {head} connects {len(nets)} nets, {sub} has {len(pins)} pins")
                continue
            for net, d in zip(nets, dirs):
                (read if d == "in" else drive)(net, head)
        elif kind == "t":
            read(parts[1], head)
            drive(parts[3], head)
        elif kind == "i":
            drive(parts[2], head)
            m = _PWL.search(ln)
            if m:
                vals = m.group(1).split()
                times = [_num(v) for v in vals[0::2]]
                bad = [k for k in range(1, len(times)) if times[k] <= times[k - 1]]
                if bad:
                    k = bad[0]
                    problems.append(f"line {n}: {head} PWL time {vals[2 * k]} does not rise after {vals[2 * k - 2]}")
        elif kind == "r":
            read(parts[1], head)
        else:
            problems.append(f"line {n}: unexpected element {head!r}")
    for net, who in sorted(drivers.items()):
        if len(who) > 1:
            problems.append(f"net {net} driven {len(who)} times ({', '.join(who[:3])})")
        if net not in readers:
            problems.append(f"net {net} driven by {who[0]} but read by nothing")
    for net, who in sorted(readers.items()):
        if net not in drivers:
            problems.append(f"net {net} read by {who[0]} but driven by nothing")
    return problems
