"""learn and evaluate refuse what they cannot read truly, with its row and column: two headers read as
one column, a time column with values that are no time, a test file without a column the model was
learned on (or with text where training read numbers), a model reading fields the CSV lacks; and they
say when the held-out rows cannot measure anything (hand-made CSVs written by each test)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compiled_scores import compiled_scores, write_csv
from leadscore.cli.main import app
from leadscore.errors import InputError
from leadscore.ingest.csv_import import ImportOptions
from leadscore.learn.dataset import csv_data
from leadscore.learn.evaluate import evaluate_csv
from leadscore.learn.scorecard import Scorecard
from leadscore.learn.store_data import cutoffs
from leadscore.learn.to_model import to_yaml
from leadscore.learn.train import learn
from leadscore.model import loads_model, walk
from leadscore.store import Store

runner = CliRunner()
T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z


_write = write_csv


def _leads(tmp_path: Path, name: str = "leads", n: int = 120) -> Path:
    """Leads converting when they have 500 employees or more, except every 5th (which turns it round)."""
    rows = [[f"p{i}", (20, 500, 2000)[i % 3], ("saas", "bank")[i % 2], int((i % 3 != 0) != (i % 5 == 0))]
            for i in range(n)]  # fmt: skip
    return _write(tmp_path / f"{name}.csv", ["Id", "Employees", "Industry", "Converted"], rows)


def test_two_headers_read_as_one_column_are_refused_naming_both(tmp_path: Path) -> None:
    rows = [[f"p{i}", (20, 500)[i % 2], i, i % 2] for i in range(40)]
    path = _write(tmp_path / "dup.csv", ["Id", "Employees", "Employees", "Converted"], rows)
    with pytest.raises(InputError) as err:
        csv_data(path, "Converted", id_column="Id")
    # the reader would keep the first non-blank of the two cells: a row-by-row mix of two columns
    assert err.value.problem.line == 1 and err.value.problem.field == "Employees"
    assert "columns 2 ('Employees') and 3 ('Employees') are both read as 'employees'" in str(err.value)
    # an alias counts too: "Company Size" is read as employees
    aliased = _write(tmp_path / "alias.csv", ["Id", "Employees", "Company Size", "Converted"], rows)
    with pytest.raises(InputError, match=r"columns 2 \('Employees'\) and 3 \('Company Size'\)"):
        csv_data(aliased, "Converted", id_column="Id")


def test_a_time_holdout_column_with_a_value_that_is_no_time_is_refused_with_its_row(tmp_path: Path) -> None:
    rows = [[f"p{i}", f"2024-01-{1 + i % 28:02d}", i % 5, i % 2] for i in range(40)]
    rows[5][1] = "garbage"  # row 7 of the file
    path = _write(tmp_path / "t.csv", ["Id", "Created", "Visits", "Converted"], rows)
    with pytest.raises(InputError) as err:
        csv_data(path, "Converted", id_column="Id", time_column="Created")
    assert (err.value.problem.line, err.value.problem.field) == (7, "Created")
    assert "'garbage' is neither an ISO date (2024-03-01) nor a number" in str(err.value)
    # a column of categories is no time column: its first row says so (before: "no row has a time")
    with pytest.raises(InputError) as err:
        csv_data(_leads(tmp_path), "Converted", id_column="Id", time_column="Industry")
    assert (err.value.problem.line, err.value.problem.field) == (2, "Industry")


def test_a_test_file_must_hold_the_training_columns_as_they_were_read(tmp_path: Path) -> None:
    data = csv_data(_leads(tmp_path), "Converted", id_column="Id")
    assert [f.name for f in data.features] == ["employees", "industry"]
    rows = [[f"t{i}", (20, 500)[i % 2], i % 2] for i in range(30)]
    lacking = _write(tmp_path / "lacking.csv", ["Id", "Employees", "Converted"], rows)
    with pytest.raises(InputError) as err:
        csv_data(lacking, "Converted", id_column="Id", features=data.features)
    # before: every test row read as "no industry", and the model measured on data it was not learned for
    assert "no column 'industry' (feature 'industry' of the training file)" in str(err.value)
    rows = [[f"t{i}", "many" if i == 3 else 500, "saas", i % 2] for i in range(30)]
    text = _write(tmp_path / "text.csv", ["Id", "Employees", "Industry", "Converted"], rows)
    with pytest.raises(InputError) as err:
        csv_data(text, "Converted", id_column="Id", features=data.features)
    # 29 numbers and "many": the reader reports it in a column of numbers ...
    assert err.value.problem.line == 5 and "'many'" in str(err.value)
    words = _write(tmp_path / "words.csv", ["Id", "Employees", "Industry", "Converted"],
                   [[f"t{i}", ("many", "few")[i % 2], "saas", i % 2] for i in range(30)])  # fmt: skip
    with pytest.raises(InputError) as err:
        csv_data(words, "Converted", id_column="Id", features=data.features)
    # ... and a column of texts where training read numbers is refused at its first row
    assert (err.value.problem.line, err.value.problem.field) == (2, "employees")
    assert "'many' is not a number; feature 'employees' is numeric in the training file" in str(err.value)


def test_learn_says_when_the_held_out_rows_hold_one_outcome_only(tmp_path: Path) -> None:
    data = csv_data(_leads(tmp_path), "Converted", id_column="Id")
    rows = [[f"t{i}", (20, 500)[i % 2], "saas", 0] for i in range(30)]
    test = csv_data(_write(tmp_path / "none.csv", ["Id", "Employees", "Industry", "Converted"], rows),
                    "Converted", id_column="Id", features=data.features)  # fmt: skip
    result = learn(data, "x", test=test, challenger=None, C=1.0, interactions=0, min_class_count=10)
    assert (result.holdout_rows, result.holdout_converted) == (30, 0)
    assert "the held-out rows (30, 0 converted) do not hold both outcomes" in " ".join(result.warnings)
    trained = learn(data, "x", holdout="none", challenger=None, C=1.0, interactions=0, min_class_count=10)
    assert not any("held-out rows" in w for w in trained.warnings)  # nothing was held out: nothing to say


MODEL = """
model: firmographics
fit:
  - id: big
    name: 500 employees or more
    when: {attribute: employees, gte: 500}
    points: 30
  - id: saas
    name: SaaS
    when: {attribute: industry, equals: saas}
    points: 10
"""


def test_evaluate_refuses_a_model_reading_a_field_no_column_holds(tmp_path: Path) -> None:
    rows = [[f"p{i}", (20, 500)[i % 2], i % 2] for i in range(40)]
    path = _write(tmp_path / "no_industry.csv", ["Id", "Employees", "Converted"], rows)
    with pytest.raises(InputError) as err:
        evaluate_csv(loads_model(MODEL), "m", path, outcome="Converted", id_column="Id")
    # before: every lead missed the rule, and the numbers measured another model than the one given
    assert "rule 'saas' reads 'industry', and no column of the file is read as 'industry'" in str(err.value)
    account = MODEL.replace("attribute: industry", "attribute: account.industry")
    with pytest.raises(InputError, match="rule 'saas' reads only the account"):
        evaluate_csv(loads_model(account), "m", _leads(tmp_path), outcome="Converted", id_column="Id")
    # the account's value, else the lead's (as a learned model writes it): the lead's column is read
    fallback = MODEL.replace(
        "when: {attribute: industry, equals: saas}",
        "when: {any: [{attribute: account.industry, equals: saas},"
        " {all: [{attribute: account.industry, missing: true}, {attribute: industry, equals: saas}]}]}",
    )
    ev = evaluate_csv(loads_model(fallback), "m", _leads(tmp_path), outcome="Converted", id_column="Id")
    # 120 leads: 80 with 500 or more employees, 60 in SaaS; rule "saas" hits every second lead
    assert (ev.rows, [(r.rule, r.coverage) for r in ev.rules]) == (120, [("big", 80 / 120), ("saas", 0.5)])


def test_evaluate_says_how_it_read_an_outcome_column_of_ids(tmp_path: Path) -> None:
    rows = [[f"p{i}", (20, 500)[i % 2], "saas", f"006A{i:04d}" if i % 4 == 0 else ""] for i in range(40)]
    path = _write(tmp_path / "crm.csv", ["Id", "Employees", "Industry", "Opportunity"], rows)
    ev = evaluate_csv(loads_model(MODEL), "m", path, outcome="Opportunity", id_column="Id")
    assert (ev.rows, ev.converted) == (40, 10)
    assert ev.warnings[0].startswith("outcome column 'Opportunity' holds no yes/no values")


def test_learn_cli_prints_the_error_with_file_row_and_column(tmp_path: Path) -> None:
    rows = [[f"p{i}", "soon" if i == 2 else f"2024-02-{1 + i:02d}", i % 5, i % 2] for i in range(20)]
    path = _write(tmp_path / "t.csv", ["Id", "Created", "Visits", "Converted"], rows)
    result = runner.invoke(app, ["learn", "--csv", str(path), "--outcome", "Converted", "--id", "Id",
                                 "--holdout", "time:Created", "--output", str(tmp_path / "x.yaml")])  # fmt: skip
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith(f"{path}:4 field Created: 'soon' is neither an ISO date")


def test_a_free_text_writes_no_rule_for_a_value_it_cannot_have(tmp_path: Path) -> None:
    seniority = ("VP", "Head", "Director", "Manager", "Engineer", "Student")
    rows = [[f"p{i}", f"{seniority[i % 6]} {('Marketing', 'Sales', 'Finance')[i % 3]} {i % 50}",
             int((i % 6 < 3) != (i % 7 == 0))] for i in range(300)]  # fmt: skip
    data = csv_data(_write(tmp_path / "titles.csv", ["Id", "Job Title", "Converted"], rows), "Converted",
                    id_column="Id")  # fmt: skip
    assert "job_title mentions VP / Head / Director" in [f.name for f in data.features]
    result = learn(data, "x", holdout="none", challenger=None, C=1.0, interactions=0, min_class_count=10)
    names = [r.name for r in result.model.fit]
    # a text mentions the words or it does not: before, each words feature also wrote "Job title: no
    # value", a rule no lead can hit (a contradiction, "no training leads") worth points, in the budget
    assert [n for n in names if n.endswith(": no value")] == []
    assert "Job title mentions VP / Head / Director" in names
    assert all(" mention" in n for n in names)


def test_dates_spelt_as_spreadsheets_spell_them_are_not_features(tmp_path: Path) -> None:
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun")
    rows = [[f"p{i}", f"{1 + i % 28} {months[i % 6]} 2024", f"{1 + i % 6:02d}/01/2024",
             f"{1 + i % 6}/{1 + i % 28}/2024 10:{10 + i % 50} PM", f"2024{1 + i % 6:02d}{1 + i % 28:02d}",
             f"{months[i % 6]}. {1 + i % 28}, 2024", i % 5, int((i % 6 >= 3) != (i % 7 == 0))]
            for i in range(120)]  # fmt: skip
    path = _write(tmp_path / "crm.csv", ["Id", "Created", "Week", "Updated", "Day", "Closed", "Visits",
                                         "Converted"], rows)  # fmt: skip
    data = csv_data(path, "Converted", id_column="Id")
    # before: "Created mentions apr" (words of a free text) and "week: 04/01/2024" (categories), rules
    # on calendar days that stop meaning anything after learning
    assert [f.name for f in data.features] == ["visits"]
    assert sorted(c for c, why in data.dropped if why.startswith("a date")) == [
        "closed", "created", "day", "updated", "week"
    ]  # fmt: skip
    # a day and month that fit neither order (31/02, 13/13) are not a date
    rows = [[f"p{i}", f"{13 + i % 3}/13/2024", i % 5, i % 2] for i in range(40)]
    odd = csv_data(_write(tmp_path / "odd.csv", ["Id", "Code", "Visits", "Converted"], rows), "Converted",
                   id_column="Id")  # fmt: skip
    assert [f.name for f in odd.features] == ["code", "visits"]


def test_the_id_column_names_one_lead_per_row(tmp_path: Path) -> None:
    path = _leads(tmp_path)
    out = ["--challenger", "none", "--min-outcomes", "10", "--output", str(tmp_path / "x.yaml")]
    result = runner.invoke(
        app, ["learn", "--csv", str(path), "--outcome", "Converted", "--id", "Industry", *out]
    )
    # before: scikit-learn's "Cannot have number of splits n_splits=5 greater than the number of groups: 2"
    assert isinstance(result.exception, InputError)
    assert "id 'saas' names 60 rows (rows 2, 4, 6, 8, 10 and 55 more); 2 ids appear more than once" in str(
        result.exception
    )
    with pytest.raises(InputError, match="--id and --outcome name the same column"):
        csv_data(path, "Converted", id_column="Converted")
    with pytest.raises(InputError, match="--categorical 'Size' names no column of the file"):
        csv_data(path, "Converted", id_column="Id", categorical=["Size"])
    rows = [[f"p{i}" if i != 4 else "", 20, i % 2] for i in range(10)]
    blank = _write(tmp_path / "blank.csv", ["Id", "Employees", "Converted"], rows)
    with pytest.raises(InputError) as err:
        csv_data(blank, "Converted", id_column="Id")
    # before: read as the id 'None' (evaluate then dropped the row without a word)
    assert (err.value.problem.line, err.value.problem.field) == (6, "Id") and "no id" in str(err.value)


def test_a_column_reaching_1e308_learns_a_model_the_compiled_query_scores_alike(
    store: Store, tmp_path: Path
) -> None:
    values = ("1e308", "-1e308", "1.7976931348623157e308", "-0", "0", "5", "9.83E-05")
    rows = [[f"s{i}", values[i % 7], int((i % 7 in (0, 2)) != (i % 5 == 0))] for i in range(280)]
    path = _write(tmp_path / "huge.csv", ["Session", "Reach", "Converted"], rows)
    data = csv_data(path, "Converted", id_column="Session")
    sc = Scorecard(data.features, min_class_count=20, max_bins=4, min_bin_share=0.03).fit(data.X, data.y)
    # before: the edge 1e308 was written as a 309-digit integer, which the model language refuses
    model = loads_model(to_yaml(sc, "huge"))
    edges = [c.value for r in model.fit for c in walk(r.when)]
    assert 1e308 in edges and all(isinstance(v, float) for v in edges if abs(v) >= 2**63)
    options = ImportOptions(mapping={"Session": "user_id"}, ignore=frozenset({"Converted"}))
    compiled = compiled_scores(store, model, T0, path, options)
    expected = dict(zip(data.keys, sc.score_100(data.X).tolist(), strict=True))
    assert len(compiled) == 280 and [k for k, v in expected.items() if abs(compiled[k] - v) > 1e-9] == []
    # 1e308 and the largest double (converting) above -1e308, -0, 0, 5 and 9.83E-05
    assert expected["s0"] == expected["s2"] > expected["s1"]


def test_evaluate_scores_every_row_or_says_which_it_cannot(tmp_path: Path) -> None:
    rows = [[f"p{i}", f"p{i}@a.example", (20, 500)[i % 2], "saas", i % 2] for i in range(20)]
    rows[6][1] = "not an e-mail"  # row 8
    path = _write(tmp_path / "bad.csv", ["Id", "Email", "Employees", "Industry", "Converted"], rows)
    with pytest.raises(InputError) as err:
        evaluate_csv(loads_model(MODEL), "m", path, outcome="Converted", id_column="Id")
    # before: 19 labelled rows, the refused one left out without a word
    assert (err.value.problem.line, err.value.problem.field) == (8, "Email")
    rows[6][1] = "p5@a.example"  # rows 7 and 8: two ids, one e-mail, which the import makes one lead
    path = _write(tmp_path / "same.csv", ["Id", "Email", "Employees", "Industry", "Converted"], rows)
    with pytest.raises(InputError) as err:
        evaluate_csv(loads_model(MODEL), "m", path, outcome="Converted", id_column="Id")
    # before: 19 labelled rows, one outcome merged away
    assert (err.value.problem.line, err.value.problem.field) == (8, "Id")
    assert "the lead of id 'p6' is another row's too (the same e-mail); 1 of 20 rows so" in str(err.value)


def test_learn_says_how_it_read_the_test_files_outcome_column(tmp_path: Path) -> None:
    data = csv_data(_leads(tmp_path), "Converted", id_column="Id")
    rows = [[f"t{i}", (20, 500)[i % 2], "saas", f"006A{i:04d}" if i % 2 else ""] for i in range(30)]
    path = _write(tmp_path / "opps.csv", ["Id", "Employees", "Industry", "Converted"], rows)
    test = csv_data(path, "Converted", id_column="Id", features=data.features)
    result = learn(data, "x", test=test, challenger=None, C=1.0, interactions=0, min_class_count=10)
    assert (result.holdout_rows, result.holdout_converted) == (30, 15)
    # before: the training file's yes/no and the test file's "present = converted" went unremarked
    assert any(
        w.startswith("test set: outcome column 'Converted' holds no yes/no values") for w in result.warnings
    )


def test_files_that_are_not_there_are_usage_errors_not_tracebacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _leads(tmp_path)
    monkeypatch.chdir(tmp_path)  # short names: the error box wraps long ones
    learn_ = ["learn", "--outcome", "Converted", "--id", "Id", "--challenger", "none"]
    cases = {
        "Invalid value for '--csv': file 'missing.csv' does not exist": [*learn_, "--csv", "missing.csv"],
        "Invalid value for '--test-csv'": [*learn_, "--csv", "leads.csv", "--test-csv", "missing.csv"],
        "file '.' is a directory": [*learn_, "--csv", "leads.csv", "--output", "."],
        "no folder 'no' to write 'x.yaml' in": [*learn_, "--csv", "leads.csv", "--output", "no/x.yaml"],
        "file 'missing.csv' does not exist": ["outcomes", "import", "missing.csv"],
    }
    for said, args in cases.items():
        result = runner.invoke(app, args)
        # before: FileNotFoundError / IsADirectoryError tracebacks, the unwritable output after learning
        assert result.exit_code == 2 and said in " ".join(result.output.replace("│", " ").split()), args


def test_a_windows_1252_file_is_learned_from_and_said_to_be_one(tmp_path: Path) -> None:
    rows = [
        [f"p{i}", ("détail", "banque")[i % 2], i % 5, int((i % 2 == 0) != (i % 7 == 0))] for i in range(60)
    ]
    path = tmp_path / "eu.csv"
    with path.open("w", newline="", encoding="cp1252") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(["Id", "Secteur", "Visits", "Converted"])
        writer.writerows(rows)
    data = csv_data(path, "Converted", id_column="Id")
    assert sorted(set(data.column("secteur").tolist())) == ["banque", "détail"]
    # before: decoded right, but the reader's note was dropped (import leads prints it)
    assert data.notes[0].startswith("read as Windows-1252: the file is not UTF-8 (30 lines with accented")


def test_learn_json_is_json_when_nothing_was_measured(tmp_path: Path) -> None:
    args = ["learn", "--csv", str(_leads(tmp_path)), "--outcome", "Converted", "--id", "Id", "--holdout", "none",
            "--min-outcomes", "10", "--challenger", "none", "--c", "1", "--output", str(tmp_path / "x.yaml"), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # before: "roc_auc": NaN, which JSON does not have (jq and JavaScript refuse the document)
    summary = json.loads(result.output, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert summary["points"] == {"name": "points model", "roc_auc": None, "pr_auc": None, "ece": None}


def test_evaluate_refuses_a_number_rule_on_a_column_of_texts(tmp_path: Path) -> None:
    sizes = ("1-10", "11-50", "201-1000")  # a CRM's size ranges, where the model wants a number
    rows = [[f"p{i}", sizes[i % 3], "saas", i % 2] for i in range(30)]
    path = _write(tmp_path / "ranges.csv", ["Id", "Employees", "Industry", "Converted"], rows)
    with pytest.raises(InputError) as err:
        evaluate_csv(loads_model(MODEL), "m", path, outcome="Converted", id_column="Id")
    # before: no text is at least 500, every lead missed the rule, and the numbers said nothing of it
    assert (err.value.problem.line, err.value.problem.field) == (2, "employees")
    assert (
        "rule 'big' compares 'employees' with a number (gte), and the column holds texts such as '1-10'"
        in str(err.value)
    )


def test_learn_options_that_mean_nothing_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _leads(tmp_path)
    monkeypatch.chdir(tmp_path)
    learn_ = ["learn", "--csv", "leads.csv", "--outcome", "Converted", "--id", "Id", "--challenger", "none",
              "--min-outcomes", "10", "--holdout", "none"]  # fmt: skip
    # before: ValueError and ZeroDivisionError tracebacks, and a model learned with a negative C
    for c in ("abc", "0", "-1", "nan"):
        result = runner.invoke(app, [*learn_, "--c", c])
        said = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 2 and f"'{c}' is not 'cv' or a number above 0" in said, (c, said)
    # before: a store's learn took --holdout time:COLUMN and held out by cutoff, the column unread
    result = runner.invoke(app, ["learn", "--db", "none.db", "--holdout", "time:Created"])
    assert result.exit_code == 2 and "--holdout time:COLUMN go with --csv" in result.output


def test_a_period_that_ends_before_it_starts_or_has_too_many_cutoffs_is_refused(
    store: Store, tmp_path: Path
) -> None:
    day = 86_400_000
    assert cutoffs(T0, T0 + 28 * day, 14 * day) == [T0, T0 + 14 * day, T0 + 28 * day]
    # before: 1,111,896 hourly cutoffs since 1900 (the store read for each), and an empty report for a
    # period upside down
    with pytest.raises(
        InputError, match=r"2024-05-01 to 2024-07-12 every 1 hours is 1729 cutoffs; at most 1000"
    ):
        cutoffs(T0, T0 + 72 * day, 3_600_000)
    with pytest.raises(InputError, match="the period starts on 2024-05-29, after it ends on 2024-05-01"):
        cutoffs(T0 + 28 * day, T0, day)
    model = tmp_path / "m.yaml"
    model.write_text(MODEL)
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(
        app, ["backtest", str(model), "--db", url, "--since", "2025-06-01", "--until", "2025-01-01"]
    )
    assert isinstance(result.exception, InputError)
    assert str(result.exception).startswith("the period starts on 2025-06-01, after it ends on 2025-01-01")


def test_every_bad_row_of_a_learning_file_is_said_at_once(tmp_path: Path) -> None:
    """Two bad rows (file lines 4 and 9: a NUL in a text cell, a 20-digit count): before, the first alone
    was said, so a file with many was fixed a run at a time; the second named no value either."""
    rows = [[f"p{i}", ("VP", "Analyst")[i % 2], i % 7, i % 2] for i in range(30)]
    rows[2][1] = "V\x00P"
    rows[7][2] = "99999999999999999999"
    path = _write(tmp_path / "bad.csv", ["Id", "Title", "Visits", "Converted"], rows)
    with pytest.raises(InputError) as err:
        csv_data(path, "Converted", id_column="Id")
    assert [(p.line, p.field) for p in err.value.problems] == [(4, "Title"), (9, "Visits")]
    assert str(err.value).splitlines()[1] == (
        f"{path}:9 field Visits: '99999999999999999999' is outside the 64-bit integer range"
    )
    # more than InputError.LISTED bad rows: the first twenty said, and how many more
    many = [[f"p{i}", "V\x00P" if i < 25 else "VP", i % 7, i % 2] for i in range(40)]
    with pytest.raises(InputError) as err:
        csv_data(_write(tmp_path / "many.csv", ["Id", "Title", "Visits", "Converted"], many), "Converted")
    said = str(err.value).splitlines()
    assert len(err.value.problems) == 25 and len(said) == 21 and said[-1] == "(and 5 more problems)"


def test_evaluate_reads_the_columns_the_model_reads_and_a_bad_cell_elsewhere_sinks_nothing(
    tmp_path: Path,
) -> None:
    """An export with a column no rule reads holding a 20-digit lead id and a note with a NUL (file line
    5): before, the whole evaluation was refused for them."""
    rows = [[f"p{i}", (20, 500)[i % 2], ("saas", "bank")[i % 3 == 0], str(10**19 + i), "call back", i % 2]
            for i in range(40)]  # fmt: skip
    rows[3][4] = "call\x00back"
    header = ["Id", "Employees", "Industry", "Facebook Lead ID", "Notes", "Converted"]
    path = _write(tmp_path / "export.csv", header, rows)
    ev = evaluate_csv(loads_model(MODEL), "m", path, outcome="Converted", id_column="Id")
    # 40 leads, the 20 odd ones converted; every one of them has 500 employees (rule big), no even one
    assert (ev.rows, ev.converted, ev.roc_auc) == (40, 20, 1.0)
    # rule saas: the 26 leads whose number is no multiple of 3 (13 odd, 13 even ones)
    assert [(r.rule, r.coverage) for r in ev.rules] == [("big", 0.5), ("saas", 26 / 40)]
    # a bad cell in a column the model reads is still said with its row and column
    rows[3][2] = "sa\x00as"
    path = _write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(InputError) as err:
        evaluate_csv(loads_model(MODEL), "m", path, outcome="Converted", id_column="Id")
    assert [(p.line, p.field) for p in err.value.problems] == [(5, "Industry")]
