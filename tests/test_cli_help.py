"""Every command's ``--help`` shows its texts whole.

Help texts name config keys in brackets (``[gateway.port]``) and paths with placeholders
(``<data>/run``). Rendered as Rich markup, the default, a bracketed key is taken for a style
tag and silently dropped; the CLI renders help as Markdown instead, where a placeholder must
be written as code. This renders every command's help and finds each text in it.
"""

from __future__ import annotations

import re
from typing import Any

import typer.main
from typer.testing import CliRunner

from tickdb.cli import app

BORDERS = re.compile(r"[│╭╮╰╯─]")


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def commands(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """Every command under ``command`` with its path (Typer's own click: duck-typed)."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found.extend(commands(sub, [*path, name]))
    return found


def test_every_help_text_is_shown_whole() -> None:
    runner = CliRunner()
    tree = commands(typer.main.get_command(app), [])
    assert len(tree) > 30  # every command group was found
    checked, missing = 0, []
    for path, command in tree:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        shown = words(BORDERS.sub(" ", result.output))
        texts = [command.help or ""]
        texts += [p.help or "" for p in command.params if not getattr(p, "hidden", False)]
        for text in texts:
            for paragraph in re.split(r"\n\s*\n", text):
                expected = words(paragraph.replace("`", ""))
                if expected:
                    checked += 1
                    if expected not in shown:
                        missing.append((" ".join(path), expected))
    assert checked > 200
    assert not missing, missing


def test_a_config_key_in_brackets_is_shown() -> None:
    result = CliRunner().invoke(app, ["gateway", "--help"], terminal_width=200)
    assert "[gateway.port]" in result.output
