"""The rich console the CLI prints its tables to.

Rich sizes a console to the terminal, and to 80 columns when output goes to a pipe or a
file, where a status table of ten columns then folds every name to an ellipsis (``comp…``,
``prim…``). Piped output is read by scripts and ``less``, not wrapped by a terminal: it gets
``PIPED_WIDTH`` columns, unless ``COLUMNS`` says otherwise.
"""

from __future__ import annotations

import os

from rich.console import Console

PIPED_WIDTH = 200


def table_console(*, stderr: bool = False) -> Console:
    """A console for tables: the terminal's width, or ``PIPED_WIDTH`` when not a terminal."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPED_WIDTH)
    return console
