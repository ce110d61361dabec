"""Model files with problems (tests/models/bad/*.yaml): every expected problem is reported, positioned.

Each file lists its expectations as comments: ``# expect: LINE:COL RULE-ID message fragment``
(``-`` when no rule is involved). Line numbers count the comment lines too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.errors import ModelValidationError
from leadscore.model import dump_model, load_model, loads_model

BAD = sorted((Path(__file__).parent / "models" / "bad").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S+) (.+)$")


def expectations(path: Path) -> list[tuple[int, int, str | None, str]]:
    out = []
    for line in path.read_text().splitlines():
        if m := EXPECT.match(line):
            out.append((int(m[1]), int(m[2]), None if m[3] == "-" else m[3], m[4]))
    assert out, f"{path.name} has no '# expect:' lines"
    return out


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_every_problem_reported_with_position(path: Path) -> None:
    with pytest.raises(ModelValidationError) as info:
        load_model(path)
    got = [(p.line, p.column, p.rule, p.message) for p in info.value.problems]
    expected = expectations(path)
    assert len(got) == len(expected), "\n".join(str(p) for p in info.value.problems)
    for line, col, rule, fragment in expected:
        assert any((g[0], g[1], g[2]) == (line, col, rule) and fragment in g[3] for g in got), (
            f"missing {line}:{col} {rule} {fragment!r} in:\n" + "\n".join(str(p) for p in info.value.problems)
        )
    assert all(p.file == str(path) for p in info.value.problems)


def test_validate_cli_reports_all_and_exits_non_zero() -> None:
    path = next(p for p in BAD if p.stem == "many_problems")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:18:9 rule r1 field id: duplicate id 'r1'" in result.output
    assert "8 problem(s)" in result.output


def test_validate_cli_accepts_good_model() -> None:
    result = CliRunner().invoke(app, ["validate", "examples/linda/model.yaml"])
    assert result.exit_code == 0, result.output
    assert "ok — model 'linda', 0 fit and 8 engagement rules" in result.output


MINIMAL = """
model: m
lists:
  free_mail: {values: [Gmail.com, " hotmail.com "]}
fit:
  - id: free
    name: Free mail
    when: {attribute: email_domain, in_list: free_mail}
    points: -10
  - id: size
    name: Mid-size
    when: {all: [{attribute: employees, gte: 50}, {not: {attribute: employees, gt: 1000}}]}
    points: 10
engagement:
  - id: visit
    name: Visit
    event: {type: page}
    points: 1
    cap: 10
    window: 30d
    half_life: 7d
  - id: burst
    name: Burst
    kind: threshold
    event: {type: page}
    at_least: 3
    within: 2d
    points: 5
    group: web
groups:
  - {id: web, name: Web, cap: 12}
scale: {fit_max: 40, engagement_max: 30, weights: {fit: 1, engagement: 2}, levels: {1: 80, 2: 60, 3: 10}}
"""


def test_round_trip_and_frozen() -> None:
    from leadscore.model import dump_model

    model = loads_model(MINIMAL)
    assert loads_model(dump_model(model)) == model
    assert model.lists["free_mail"].values == ("gmail.com", "hotmail.com")  # trimmed, lower-cased
    assert model.scale.levels.one == 80
    with pytest.raises(Exception, match="frozen"):
        model.fit[0].points = 3  # type: ignore[misc]


def test_list_from_csv(tmp_path: Path) -> None:
    (tmp_path / "targets.csv").write_text("domain,name\nacme.com,Acme\nglobex.com,Globex\n")
    (tmp_path / "m.yaml").write_text(
        "model: m\nlists:\n  targets: {csv: targets.csv, column: domain}\nfit:\n"
        "  - {id: t, name: Target, when: {attribute: email_domain, in_list: targets}, points: 5}\n"
    )
    model = load_model(tmp_path / "m.yaml")
    assert model.lists["targets"].values == ("acme.com", "globex.com")
    assert model.lists["targets"].source == "targets.csv"


def test_a_text_from_the_dashboard_or_the_api_names_no_server_file(tmp_path: Path) -> None:
    # the dashboard's editor, the API and stored versions load a text: a list read from a CSV file there
    # read the server's files (``csv: /etc/passwd`` became a list of its lines)
    text = "model: m\nlists:\n  secrets: {csv: /etc/passwd}\nfit: []\n"
    with pytest.raises(ModelValidationError) as info:
        loads_model(text)
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 18)
    assert "list 'secrets': only a model file may read a list from a CSV file" in problem.message
    # the same list beside a model file is read (the CLI publishes its values inline)
    (tmp_path / "people.csv").write_text("name\nroot\n")
    (tmp_path / "m.yaml").write_text(text.replace("/etc/passwd", "people.csv"))
    assert load_model(tmp_path / "m.yaml").lists["secrets"].values == ("root",)


def test_a_list_csv_with_a_field_past_the_csv_limit_is_positioned(tmp_path: Path) -> None:
    (tmp_path / "big.csv").write_text("domain\n" + "x" * 200_000 + "\n")
    (tmp_path / "m.yaml").write_text("model: m\nlists:\n  targets: {csv: big.csv}\n")
    with pytest.raises(ModelValidationError) as info:
        load_model(tmp_path / "m.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 18)
    assert "list 'targets': field larger than field limit (131072)" in problem.message


def test_a_list_csv_the_stored_model_cannot_hold_is_refused_at_the_list(tmp_path: Path) -> None:
    """A version stores the model with its lists' values written in, at most 5,000,000 bytes: a 10 MB
    list file was read and validated, and publishing then refused "<stored text>: model is 12935224
    bytes". A file past the limit is not read; one whose values take the model past it is refused too."""
    (tmp_path / "huge.csv").write_text("domain\n" + "a-long-company-domain-name.example\n" * 300_000)
    (tmp_path / "m.yaml").write_text("model: m\nlists:\n  targets: {csv: huge.csv}\n")
    with pytest.raises(ModelValidationError) as info:
        load_model(tmp_path / "m.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 18)
    # 7 bytes of header, 300,000 lines of 35
    assert problem.message == (
        "list 'targets': huge.csv is 10500007 bytes; a model with its lists' values written in is at most 5000000"
    )
    # 150,000 values of 21 characters in a file of 3,300,010 bytes, 3,450,000 written in (with ", "),
    # beside an inline list of 2,000,000 characters: past 5,000,000
    (tmp_path / "big.csv").write_text("domain\n" + "d-1234567890123456789\n" * 150_000 + "ok\n")
    inline = "x" * 2_000_000
    (tmp_path / "m.yaml").write_text(f"model: m\nlists:\n  own: [{inline}]\n  targets: {{csv: big.csv}}\n")
    with pytest.raises(ModelValidationError) as info:
        load_model(tmp_path / "m.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (4, 18)
    assert problem.message.startswith(
        "list 'targets': with the values of big.csv written in, the model is at least"
    )
    assert problem.message.endswith("bytes; at most 5000000 are allowed")


def test_missing_list_csv_is_positioned(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("model: m\nlists:\n  targets: {csv: nope.csv}\n")
    with pytest.raises(ModelValidationError) as info:
        load_model(tmp_path / "m.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 18)
    assert "list 'targets'" in problem.message


def test_deeply_nested_condition_is_refused() -> None:
    cond = "{attribute: a, equals: x}"
    for _ in range(20):
        cond = "{not: " + cond + "}"
    with pytest.raises(ModelValidationError, match="nest deeper than 12"):
        loads_model(f"model: m\nfit:\n  - {{id: r, name: R, when: {cond}, points: 1}}\n")


def test_recursion_bomb_is_refused_quickly() -> None:
    text = (
        "model: m\nfit:\n  - {id: r, name: R, when: "
        + "{not: " * 5000
        + "{attribute: a, equals: x}"
        + "}" * 5000
        + ", points: 1}\n"
    )
    with pytest.raises(ModelValidationError, match="nests deeper than 40"):
        loads_model(text)


def test_yes_no_on_off_are_text_not_booleans() -> None:
    """YAML 1.1 would read the country code NO (Norway) as false; models read YAML 1.2 booleans."""
    model = loads_model("""
model: nordics
fit:
  - {id: nordic, name: Nordic, when: {attribute: country, in: [SE, NO, DK, on]}, points: 10}
  - {id: yes_plan, name: Yes plan, when: {attribute: plan, equals: yes}, points: 5}
""")
    nordic, yes_plan = model.fit
    dumped = nordic.when.model_dump(by_alias=True, exclude_none=True)
    assert dumped["in"] == ["SE", "NO", "DK", "on"]
    assert yes_plan.when.model_dump(by_alias=True, exclude_none=True)["equals"] == "yes"
    # and a model written back out reads the same (the dumper quotes 'NO', 'yes', 'on')
    assert loads_model(dump_model(model)) == model


@pytest.mark.parametrize("number", ["1.0e+19", "1.0e+300", "-9.3e+18", "1.0e+16", "9007199254740992.0"])
def test_a_large_float_in_a_condition_writes_back_as_a_float(number: str) -> None:
    """1.0e+19 was written back as 10000000000000000000, which loading refuses (beyond 64 bits), so
    publishing a model with it failed; 2**53 is the largest float written as an integer."""
    model = loads_model(f"""
model: big
fit:
  - {{id: huge, name: Huge, when: {{attribute: annual_revenue, gte: {number}}}, points: 10}}
""")
    assert model.fit[0].when.value == float(number)
    assert loads_model(dump_model(model)) == model
