"""Every command of the ``tickdb`` CLI is documented in docs/cli.md."""

from __future__ import annotations

from pathlib import Path

import typer

from tickdb.cli import app


def command_paths(group: typer.Typer, prefix: str = "tickdb") -> list[str]:
    paths = []
    for command in group.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        paths.append(f"{prefix} {name.replace('_', '-')}")
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        paths.append(f"{prefix} {sub.name}")
        paths.extend(command_paths(sub.typer_instance, f"{prefix} {sub.name}"))
    return paths


def test_every_command_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    missing = [path for path in command_paths(app) if f"`{path}" not in doc]
    assert not missing, f"undocumented commands: {missing}"
