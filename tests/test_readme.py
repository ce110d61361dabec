"""The README's own commands, run as written: the tour's console block and the model-language example."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.model import loads_model

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def tour() -> list[tuple[list[str], list[str]]]:
    """(argv, expected output lines) for each ``$ leadscore ...`` line of the console block."""
    (block,) = _blocks("console")
    steps: list[tuple[list[str], list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            argv = shlex.split(line[2:])
            assert argv[0] == "leadscore", line
            steps.append((argv[1:], []))
        elif line.strip():
            steps[-1][1].append(line)
    return steps


def test_quick_start_has_exactly_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    (block,) = re.findall(r"```\n(.*?)```", quick, flags=re.S)
    commands = [c for c in block.splitlines() if c.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("leadscore demo")
    assert commands[1].endswith("pytest")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    db = str(tmp_path / "linda.db")
    steps = tour()
    assert len(steps) >= 7
    for argv, expected in steps:
        argv = [db if arg == "linda.db" else arg for arg in argv]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, f"leadscore {' '.join(argv)}\n{result.output}"
        for fragment in expected:
            assert fragment in result.output, (
                f"leadscore {' '.join(argv)}: {fragment!r} not in\n{result.output}"
            )


def test_model_language_example_is_valid() -> None:
    (example,) = _blocks("yaml")
    model = loads_model(example, "README.md")
    assert {r.id for r in model.fit} == {"marketing_leader", "free_mail"}
    assert yaml.safe_load(example)["defaults"] == {"half_life": "30d"}


def test_command_list_names_every_command() -> None:
    import typer

    section = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert len(commands) > 20
    missing = [name for name in commands if f"`{name}`" not in section and f"`{name} " not in section]
    assert not missing, f"README's command list lacks {missing}"
