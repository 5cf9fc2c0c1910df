"""The README's command table and layout block are checked against the code (as
sqlite-utils checks that every command is documented): a command added, renamed or
removed, or a module moved, fails here until the README says so."""

from __future__ import annotations

import re

import click
from tests.unit.paths import ROOT

from ls_llmtrace.cli import main

README = (ROOT / "README.md").read_text(encoding="utf-8")
PACKAGE = ROOT / "src" / "ls_llmtrace"


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def cli_commands(command: click.Command = main, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every leaf command of the CLI, as typed (``schema push``)."""
    if isinstance(command, click.Group):
        out: set[str] = set()
        for name, sub in command.commands.items():
            out |= cli_commands(sub, (*prefix, name))
        return out
    return {" ".join(prefix)}


def table_commands() -> set[str]:
    """The commands named in the first column of the README's command table.

    A cell names one or more ``ls-llmtrace ...`` commands in backticks; the command is the
    lowercase words before the first argument or option (``FILE``, ``[--json]``);
    ``up\\|down`` lists alternatives of the last word."""
    out: set[str] = set()
    for line in _section("Commands").splitlines():
        if not line.startswith("| `ls-llmtrace"):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        for code in re.findall(r"`ls-llmtrace ([^`]*)`", first_cell):
            words = []
            for word in code.split():
                if not re.fullmatch(r"[a-z][a-z-]*(\\\|[a-z][a-z-]*)*", word):
                    break
                words.append(word)
            assert words, f"no command in {code!r}"
            for last in words[-1].split("\\|"):
                out.add(" ".join([*words[:-1], last]))
    return out


def test_every_command_is_in_the_table_and_every_listed_command_exists():
    commands, listed = cli_commands(), table_commands()
    assert "schema push" in commands and "import" in commands  # the walk goes deep
    assert sorted(commands - listed) == [], "commands missing from README's command table"
    assert sorted(listed - commands) == [], "README's command table names unknown commands"


def _layout_lines() -> list[str]:
    block = _section("Layout").split("```")[1]
    return [line for line in block.splitlines() if line.strip()]


def _items(description: str) -> list[str]:
    """The module names a stage line lists: comma-separated, each with an optional
    ``(explanation)``; the name is the first word of each item."""
    depth, items, current = 0, [], ""
    for char in description:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return [item.split()[0] for item in items if item.strip()]


def test_layout_block_names_only_what_exists_and_every_stage_package():
    lines = _layout_lines()
    assert lines[0].split()[0] == "src/ls_llmtrace/"
    named_in_package = []
    for line in lines[1:]:
        name, _, description = line.strip().partition(" ")
        if line.startswith("  "):  # inside src/ls_llmtrace/
            named_in_package.append(name)
            path = PACKAGE / name
            assert path.exists(), f"README layout names {name}, which is not in the package"
            if name.endswith("/") and (path / "__init__.py").exists():
                for module in _items(description):
                    target = path / module.rstrip("/")
                    exists = (target.is_dir() if module.endswith("/")
                              else target.with_suffix(".py").is_file())
                    assert exists, f"README layout names {name}{module}, which does not exist"
        else:
            assert (ROOT / name).exists(), f"README layout names {name}, which does not exist"
    stages = sorted(f"{p.name}/" for p in PACKAGE.iterdir()
                    if p.is_dir() and (p / "__init__.py").exists())
    assert [s for s in stages if s not in named_in_package] == [], \
        "stage packages missing from README's layout block"
