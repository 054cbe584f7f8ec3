"""Board specs: hardware constants as data, each with the source it comes from.

A board is a TOML file in `boards/` (package `spikeforge.boards`). Schema::

    name = "loihi2"                 # unique, matches the file name
    backend = "loihi"               # entry point in the `spikeforge.backends` group
    description = "..."
    notes = ["...", ...]            # optional, printed by `boards show`

    [<section>.<constant>]          # section in SECTIONS
    value = 23.6e-12                # number, bool, string or list of numbers
    unit = "J"
    source = "Davies et al. 2018, IEEE Micro 38(1), Table 2"
    status = "measured"             # measured | published | derived | assumed | estimate (default published)
    note = "..."                    # optional

Unknown keys and constants without a source are errors, so nothing uncited slips into a cost model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from .errors import BoardError

SECTIONS = ("limits", "energy", "timing", "arithmetic", "physics", "parameters")
STATUSES = ("measured", "published", "derived", "assumed", "estimate")
_TOP_KEYS = {"name", "backend", "description", "notes", *SECTIONS}
_CONST_KEYS = {"value", "unit", "source", "status", "note"}


@dataclass(frozen=True)
class Constant:
    """One hardware figure with its unit and citation."""

    value: Any
    unit: str
    source: str
    status: str = "published"
    note: str = ""


@dataclass(frozen=True)
class Board:
    name: str
    backend: str
    description: str
    sections: dict[str, dict[str, Constant]]
    notes: tuple[str, ...] = ()
    path: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def const(self, key: str) -> Constant:
        """Look up 'section.name'; a missing constant is a board error naming the board and key."""
        section, _, name = key.partition(".")
        try:
            return self.sections[section][name]
        except KeyError:
            raise BoardError(f"board '{self.name}' has no constant '{key}'", file=self.path) from None

    def value(self, key: str, default: Any = ...) -> Any:
        section, _, name = key.partition(".")
        if default is not ... and name not in self.sections.get(section, {}):
            return default
        return self.const(key).value

    def has(self, key: str) -> bool:
        section, _, name = key.partition(".")
        return name in self.sections.get(section, {})

    def cite(self, key: str) -> str:
        c = self.const(key)
        return f"{key} = {c.value} {c.unit} [{c.status}; {c.source}]"


def parse_board(data: dict, path: str) -> Board:
    from .boardschema import validate_board

    if not isinstance(data, dict):
        raise BoardError("a board spec must be a table", file=path)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise BoardError(f"unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}", file=path)
    for key in ("name", "backend", "description"):
        if not isinstance(data.get(key), str) or not data.get(key):
            raise BoardError(f"missing or empty '{key}'", file=path)
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise BoardError("'notes' must be a list of strings", file=path)
    sections: dict[str, dict[str, Constant]] = {}
    for section in SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise BoardError(f"[{section}] must be a table", file=path)
        parsed = {}
        for cname, entry in table.items():
            where = f"{section}.{cname}"
            if not isinstance(entry, dict):
                raise BoardError(f"constant '{where}' must be a table with value, unit and source", file=path)
            bad = set(entry) - _CONST_KEYS
            if bad:
                raise BoardError(f"constant '{where}' has unknown key(s) {sorted(bad)}", file=path)
            for req in ("value", "unit", "source"):
                if req not in entry:
                    raise BoardError(f"constant '{where}' is missing '{req}'", file=path)
            if not str(entry["source"]).strip():
                raise BoardError(f"constant '{where}' has an empty source", file=path)
            status = entry.get("status", "published")
            if status not in STATUSES:
                raise BoardError(f"constant '{where}' has status {status!r}; allowed: {STATUSES}", file=path)
            parsed[cname] = Constant(
                value=entry["value"], unit=str(entry["unit"]), source=str(entry["source"]),
                status=status, note=str(entry.get("note", "")),
            )
        sections[section] = parsed
    validate_board(data, path)  # types, ranges and units (toolchain/boardschema.py)
    return Board(
        name=data["name"], backend=data["backend"], description=data["description"],
        sections=sections, notes=tuple(notes), path=path, raw=data,
    )


def load_board_file(path: str | Path) -> Board:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise BoardError("board file not found", file=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"not valid TOML ({exc})", file=str(p)) from None
    board = parse_board(data, str(p))
    if board.name != p.stem:
        raise BoardError(f"board name '{board.name}' does not match its file name '{p.stem}'", file=str(p))
    return board


def board_files() -> list[Path]:
    root = resources.files("spikeforge.boards")
    return sorted(Path(str(p)) for p in root.iterdir() if str(p).endswith(".toml"))


def list_boards() -> list[Board]:
    return [load_board_file(p) for p in board_files()]


#: boards loaded from artifacts (their full spec travels in manifest.json); consulted first by get_board
_REMEMBERED: dict[str, Board] = {}


def remember_board(board: Board) -> None:
    """Make an artifact's own board spec the one `get_board(name)` returns in this process.

    Why: `compile --board my.toml` stores the full table in the artifact, and every later command
    (emulate, verify, profile; all backends' cost models look boards up by name) must see that board,
    not fail with `unknown board` or use a different file of the same name.
    """
    bundled = [p for p in board_files() if p.stem == board.name]
    if bundled and load_board_file(bundled[0]).raw == board.raw:
        _REMEMBERED.pop(board.name, None)  # the bundled board itself: nothing to shadow
        return
    _REMEMBERED[board.name] = board


def get_board(name: str) -> Board:
    """A board by name, or a path to a board TOML file of the user's own."""
    if name in _REMEMBERED:
        return _REMEMBERED[name]
    if name.endswith(".toml") or "/" in name:
        return load_board_file(name)
    for p in board_files():
        if p.stem == name:
            return load_board_file(p)
    known = ", ".join(p.stem for p in board_files())
    raise BoardError(f"unknown board '{name}'; known boards: {known}")
