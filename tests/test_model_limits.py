"""Hostile model YAML is refused by the one loader before anything is built from it, with a position:
alias bombs ("billion laughs"), too many aliases, aliases inside their own anchor, deep nesting (directly
or through an alias) and huge files. Small anchors and aliases in a real model still load. The limits
hold for ``leadscore validate`` (a file), publish and stored versions (text) and the dashboard's editor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli.main import app as cli
from leadscore.errors import ModelValidationError
from leadscore.model import load_model, loads_model
from leadscore.model.yaml_io import MAX_DOCUMENT_BYTES

# nine levels of nine aliases: 9^8 × 10 ≈ 430 million nodes once expanded, in under 400 bytes
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
# nodes each anchor brings in: a = 10 (the list and its 9 items); b = 1 + 9 × 10 = 91; c = 1 + 9 × 91 =
# 820; d = 7381; e = 66430. Aliases on lines 2–5 bring in 9 × (10 + 91 + 820 + 7381) = 74718; the first
# *e on line 6 (column 8, after "f: &f [") adds 66430 and passes 100000.
BOMB_PROBLEM = "6:8: alias *e brings in 66430 nodes; aliases may bring in at most 100000 in all"


def _problem(text: str) -> str:
    with pytest.raises(ModelValidationError) as caught:
        loads_model(text, "m.yaml")
    assert len(caught.value.problems) == 1
    return str(caught.value.problems[0])


def test_the_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit() -> None:
    assert len(BOMB.encode()) < 400
    assert _problem(BOMB) == "m.yaml:" + BOMB_PROBLEM


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak from /proc (Linux)")
def test_the_alias_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Peak memory of a process that loads the bomb from a file (as ``leadscore validate`` does)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    # the peak is the process's own high-water mark (VmHWM): getrusage's ru_maxrss would also count the
    # pytest process it was forked from, which Linux carries over the exec
    code = (
        "import sys\n"
        "from leadscore.errors import ModelValidationError\n"
        "from leadscore.model import load_model\n"
        "try:\n"
        "    load_model(sys.argv[1])\n"
        "except ModelValidationError as exc:\n"
        "    print(exc.problems[0])\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(int(status.split()[0]))\n"  # KiB
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    problem, peak_kib = done.stdout.splitlines()
    assert problem == f"{path}:{BOMB_PROBLEM}"
    assert int(peak_kib) < 200 * 1024, f"peak RSS {int(peak_kib) // 1024} MiB"


def test_validate_reports_the_bomb_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code != 0
    assert f"{path}:{BOMB_PROBLEM}" in result.output.replace("\n", "")


def test_too_many_aliases() -> None:
    # 1001 aliases of one scalar on line 3: "l: [" then "*v, " each; the 1001st starts at 5 + 4 × 1000
    text = "model: m\nv: &v 1\nl: [" + ", ".join(["*v"] * 1001) + "]\n"
    assert _problem(text) == "m.yaml:3:4005: the document has more than 1000 aliases"
    assert loads_model("model: m\n" + "fit: []\n")  # the counting starts afresh for every document


def test_an_alias_inside_its_own_anchor() -> None:
    # "x: &a [1, [" is 11 characters, so the alias starts at column 12
    assert _problem("model: m\nx: &a [1, [*a]]\n") == "m.yaml:2:12: alias *a is inside the node it refers to"


def test_deep_nesting_directly_and_through_an_alias() -> None:
    # the mapping is level 1, so the 40th '[' (column 3 + 40 on line 2) is the 41st level
    assert _problem("model: m\nx: " + "[" * 50 + "]" * 50 + "\n") == (
        "m.yaml:2:43: the document nests deeper than 40 levels"
    )
    # an anchor 30 levels deep (the list and its 29 inner lists; the scalar inside is the 31st), used
    # inside 10 more lists at level 11: 11 + 31 > 40; the alias is at column 3 + 10 + 1 on line 3
    deep = "[" * 30 + "1" + "]" * 30
    text = f"model: m\nx: &d {deep}\ny: {'[' * 10}*d{']' * 10}\n"
    assert _problem(text) == "m.yaml:3:14: alias *d nests the document deeper than 40 levels"


def test_huge_files_and_texts_are_refused_before_they_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as handle:
        handle.write("model: m\n# " + "x" * MAX_DOCUMENT_BYTES + "\n")
    size = path.stat().st_size
    with pytest.raises(ModelValidationError) as caught:
        load_model(path)
    assert str(caught.value.problems[0]) == f"{path}: model is {size} bytes; at most 5000000 are allowed"
    # counted in bytes: 2.5 million two-byte characters and a little more
    text = "model: m\n# " + "é" * (MAX_DOCUMENT_BYTES // 2) + "\n"
    assert _problem(text) == f"m.yaml: model is {len(text.encode())} bytes; at most 5000000 are allowed"


def test_small_anchors_and_aliases_still_load() -> None:
    model = loads_model(
        """
model: anchors
fit:
  - {id: a, name: A, when: &marketing {attribute: job_title, contains: marketing}, points: 10}
  - {id: b, name: B, when: {all: [*marketing, {attribute: country, equals: se}]}, points: 5}
"""
    )
    assert model.fit[1].when.all[0] == model.fit[0].when  # type: ignore[union-attr]


def test_the_dashboard_refuses_the_bomb(tmp_path: Path) -> None:
    from leadscore.api import create_app
    from leadscore.auth.passwords import hash_password
    from leadscore.settings import Settings
    from leadscore.store import Store
    from leadscore.store.users import add_user
    from live_server import serving
    from web_support import PASSWORD, csrf_of, signed_in

    db = str(tmp_path / "web.db")
    store = Store.from_url(db)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=db, run_processor=False), store)
    try:
        with serving(app) as url, signed_in(url, "marketing@example.test") as client:
            answer = client.post(
                "/model/validate",
                data={"draft": BOMB, "csrf_token": csrf_of(client)},
                headers={"hx-request": "true"},
            )
    finally:
        store.dispose()
    assert answer.status_code == 200
    # the problem links to its place in the editor, then says what it is
    assert ">line 6, column 8</a>: alias *e brings in 66430 nodes" in answer.text
