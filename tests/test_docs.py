"""Documentation checks: every command teaches through --help, and the README starts right."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*prefix, name)
        out.append(path)
        if isinstance(command, click.Group):
            out.extend(_commands(command, path))
    return out


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli.cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, name
        command = found
    return command


ALL = _commands(cli.cli)


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) for p in ALL])
def test_docs_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    """Each command's --help works and its text has a summary and an Example."""
    result = CliRunner().invoke(cli.cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command = _command(path)
    assert command.help and len(command.help.strip()) > 20
    assert "Example" in command.help, f"{' '.join(path)} has no Example in its docstring"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"


def test_docs_command_names_are_hyphenated() -> None:
    """Command names use hyphens, never underscores."""
    assert all("_" not in name for path in ALL for name in path)


def test_docs_readme_starts_with_the_two_commands() -> None:
    """The README's first code block holds the demo command and the test command."""
    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block


def test_docs_root_listing_matches_each_command_summary() -> None:
    """The summaries the lazy root group lists without importing a command module are the
    first paragraph of each command's own help."""
    ctx = click.Context(cli.cli)
    for name, (_, _, summary) in cli.COMMANDS.items():
        command = cli.cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert (command.help or "").split("\n\n")[0].strip() == summary, name


def test_docs_help_imports_no_command_module() -> None:
    """'onboarding --help' lists every command without importing any command module."""
    import subprocess
    import sys

    code = "import sys, cli; cli.cli(['--help'], standalone_mode=False); print(sorted(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = [m for m in out.split("'") if m.startswith("onboarding.commands.")]
    # the root group and what every command shares: no command group's module
    plumbing = ("base", "common", "root", "spec")
    assert loaded == [f"onboarding.commands.{name}" for name in plumbing]
