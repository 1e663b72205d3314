"""Every command's and group's ``--help`` renders (rich markup in a help text cannot break it)."""

from __future__ import annotations

from typing import Any

import typer

from careledger.cli.main import app
from support.cli import run_cli


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``group`` (a click group, as typer builds it), groups included."""
    found: list[tuple[str, ...]] = [prefix]
    ctx = group.context_class(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        if hasattr(command, "list_commands"):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_renders_its_help() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 80  # every group's commands, not only the top level
    broken = []
    for path in commands:
        result = run_cli(*path, "--help")
        if result.exit_code != 0 or "Usage" not in result.output:
            broken.append(f"careledger {' '.join(path)}: exit {result.exit_code}: {result.output[-300:]}")
    assert not broken, "\n".join(broken)
