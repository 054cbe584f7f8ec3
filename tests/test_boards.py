"""Board specs: schema validation (unknown keys, missing sources are errors) and the shipped boards."""

from __future__ import annotations

import pytest

from spikeforge.boardspec import list_boards, load_board_file, parse_board
from spikeforge.errors import BoardError

GOOD = {
    "name": "x",
    "backend": "reference",
    "description": "test board",
    "energy": {"synop": {"value": 1e-12, "unit": "J", "source": "a paper"}},
}


def test_parse_good_board():
    b = parse_board(GOOD, "x.toml")
    assert b.value("energy.synop") == 1e-12
    assert "a paper" in b.cite("energy.synop")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(colour="red"), "unknown top-level key"),
        (lambda d: d["energy"]["synop"].pop("source"), "missing 'source'"),
        (lambda d: d["energy"]["synop"].update(source="  "), "empty source"),
        (lambda d: d["energy"]["synop"].update(typo=1), "unknown key"),
        (lambda d: d["energy"]["synop"].update(status="guess"), "status"),
        (lambda d: d.pop("backend"), "backend"),
    ],
)
def test_schema_errors(mutate, match):
    import copy

    d = copy.deepcopy(GOOD)
    mutate(d)
    with pytest.raises(BoardError, match=match):
        parse_board(d, "x.toml")


def test_missing_constant_names_board_and_key():
    b = parse_board(GOOD, "x.toml")
    with pytest.raises(BoardError, match="board 'x' has no constant 'energy.neuron'"):
        b.const("energy.neuron")


def test_every_shipped_board_loads_and_cites_every_constant():
    boards = list_boards()
    assert "cpu-reference" in {b.name for b in boards}
    for b in boards:
        for consts in b.sections.values():
            for c in consts.values():
                assert c.source.strip()


def test_name_must_match_file(tmp_path):
    p = tmp_path / "other.toml"
    p.write_text('name = "x"\nbackend = "reference"\ndescription = "d"\n')
    with pytest.raises(BoardError, match="does not match its file name"):
        load_board_file(p)
