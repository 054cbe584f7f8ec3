"""Board specs as data: one TOML file per board in this folder.

The schema and loader live in `spikeforge.boardspec`; they are re-exported here for convenience.
"""

from spikeforge.boardspec import Board, Constant, get_board, list_boards, load_board_file

__all__ = ["Board", "Constant", "get_board", "list_boards", "load_board_file"]
