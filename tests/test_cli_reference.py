"""docs/cli.md is generated from the Typer app; it must match the commands as they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "typer leadscore.cli.main utils docs --name leadscore --title 'leadscore command reference' --output docs/cli.md"


def test_cli_reference_is_current(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "leadscore.cli.main",
            "utils",
            "docs",
            "--name",
            "leadscore",
            "--title",
            "leadscore command reference",
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), (
        f"docs/cli.md is stale: run {REGENERATE}"
    )
