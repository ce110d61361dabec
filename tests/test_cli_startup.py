"""What the command line loads before it does anything: ``leadscore --help`` and ``leadscore validate``
import no database, web, learning or warehouse library (issue 17 §6: they started in seconds).

Each command module of ``cli/`` imports only typer, rich and the standard library at module level and what
its command needs inside the command function; these tests read ``python -X importtime``'s list of
imported modules in a fresh interpreter, so a module-level import that breaks the rule fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
LINDA = ROOT / "examples" / "linda" / "model.yaml"
# libraries a command loads only when it uses them: learning, warehouse engines, the web stack, HTTP clients
HEAVY = {
    "sklearn",
    "scipy",
    "pandas",
    "numpy",
    "lightgbm",
    "duckdb",
    "pyarrow",
    "pyspark",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "httpx",
}
# validate reads a model file: the store, its migrations, settings and password hashing are not needed
NOT_FOR_VALIDATE = HEAVY | {"sqlalchemy", "alembic", "psycopg", "argon2", "pydantic_settings"}
# the help lists commands: not even the model (pydantic, YAML)
NOT_FOR_HELP = NOT_FOR_VALIDATE | {"pydantic", "yaml"}


def imported(*argv: str) -> set[str]:
    """The top-level packages that ``leadscore ARGV`` imports, from ``python -X importtime``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "leadscore.cli.main", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("import time:")]
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}  # [0] is the header
    assert "leadscore" in names and "typer" in names, "importtime printed no module list"
    return names


def test_help_imports_no_heavy_library() -> None:
    names = imported("--help")
    assert names & NOT_FOR_HELP == set()


def test_validate_imports_the_model_only() -> None:
    names = imported("validate", str(LINDA))
    assert {"pydantic", "yaml"} <= names  # it did load the model
    assert names & NOT_FOR_VALIDATE == set()


def test_a_model_with_templates_still_has_them_checked(tmp_path: Path) -> None:
    # jinja2 is loaded by the template check itself, so the check still runs where a model has templates
    model = tmp_path / "model.yaml"
    model.write_text(
        """model: m
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
    - {id: mql, name: MQL}
  transitions:
    - {id: up, from: [lead], to: mql, when: {score_at_least: 60}}
  actions:
    - id: mail
      trigger: {enter: mql}
      mail: {to: seller, subject: "Hi {{ lead.name }", body: ok}
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["validate", str(model)])
    assert result.exit_code == 1
    assert f"{model}:12:35 field lifecycle.actions.0.mail.subject: template syntax" in result.output


@pytest.mark.parametrize(
    ("argv", "module", "names"),
    [
        (["keys", "create", "--help"], "leadscore.store.keys", "KINDS"),
        (["users", "create", "--help"], "leadscore.store.users", "ROLES"),
    ],
)
def test_help_names_every_choice(argv: list[str], module: str, names: str) -> None:
    # the help text is written out (importing the store for it would load SQLAlchemy): it must not drift
    import importlib

    choices = getattr(importlib.import_module(module), names)
    result = CliRunner().invoke(app, argv, terminal_width=200)
    assert result.exit_code == 0
    for choice in choices:
        assert choice in result.output, f"{choice!r} missing from `leadscore {' '.join(argv)}`"


# what the server needs before it answers: the web stack and the store, not the learning or warehouse code
# (the evaluation and review pages load it when first asked for)
NOT_FOR_SERVE = {"sklearn", "scipy", "pandas", "numpy", "lightgbm", "duckdb", "pyarrow", "pyspark"}


def test_the_server_app_imports_no_learning_library() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import leadscore.api.app"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("import time:")]
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in lines[1:]}
    assert {"fastapi", "sqlalchemy"} <= names  # it did load the app
    assert names & NOT_FOR_SERVE == set()
