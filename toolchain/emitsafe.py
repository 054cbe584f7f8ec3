"""Escaping for emitted code: user-controlled strings never become code in a script or deck.

Why: node names, board names (a TOML file's stem), `--set` values and paths reach emitted Python
scripts and SPICE decks. Each must pass through one of these before it is written, so a name
containing `\"\"\"`, a newline or `.control` cannot break out of a literal, comment or card.
"""

from __future__ import annotations

import re

_IDENT_BAD = re.compile(r"[^0-9A-Za-z_]")
_SPICE_BAD = re.compile(r"[^0-9A-Za-z_]")


def py_str(text: object) -> str:
    """A Python string literal (with quotes) that evaluates to `text`: repr() escapes quotes and newlines."""
    return repr(str(text))


def one_line(text: object, limit: int = 200) -> str:
    """Text safe inside a comment or docstring: control characters and quote runs removed, length bounded."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    s = s.replace('"""', "'''").replace("\\", "/")
    return s[:limit]


def py_ident(text: object, prefix: str = "n") -> str:
    """A valid Python identifier derived from `text` (not guaranteed unique; callers dedupe)."""
    s = _IDENT_BAD.sub("_", str(text))
    if not s or not (s[0].isalpha() or s[0] == "_"):
        s = f"{prefix}_{s}"
    return s


def spice_name(text: object, prefix: str = "x") -> str:
    """A SPICE node/subcircuit name: letters, digits and underscores only, starting with a letter."""
    s = _SPICE_BAD.sub("_", str(text))
    if not s or not s[0].isalpha():
        s = f"{prefix}{s}"
    return s


def spice_comment(text: object) -> str:
    """A SPICE comment line body: one line, no card can start inside it."""
    return "* " + one_line(text)
