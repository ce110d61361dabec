"""Hostile model YAML cannot inject SQL or hang the compiler: values are bound, names are checked,
regexes and sizes are bounded. Every case is refused with a positioned error or scored harmlessly."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from leadscore.compile import compile_model
from leadscore.errors import ModelValidationError
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import ScoringModel, loads_model, regex_search
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.run import all_leads, score
from leadscore.spreadsheet import csv_safe
from leadscore.store import Store
from leadscore.store.schema import events, leads

NOW = parse_time("2024-06-01T00:00:00Z", "now")
INJECTIONS = [
    "'; DROP TABLE leads; --",
    '" OR 1=1 --',
    "x') UNION SELECT sql FROM sqlite_master --",
    "$$; DELETE FROM events; $$",
    "\\'; SELECT pg_sleep(10); --",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_values_with_sql_are_bound(store: Store, payload: str) -> None:
    doubled = payload.replace("\\", "\\\\").replace('"', '\\"')
    model = loads_model(
        f"""
model: hostile
lists:
  evil: ["{doubled}", normal.com]
fit:
  - {{id: eq, name: "{doubled}", when: {{attribute: job_title, equals: "{doubled}"}}, points: 1}}
  - {{id: lst, name: List, when: {{attribute: email_domain, in_list: evil}}, points: 2}}
  - {{id: glb, name: Glob, when: {{attribute: job_title, glob: "*{doubled}*"}}, points: 4}}
engagement:
  - {{id: ev, name: Ev, event: {{type: track, name: "{doubled}"}}, where: {{property: note, contains: "{doubled}"}}, points: 8}}
scale: {{fit_max: 7, engagement_max: 8}}
"""
    )
    ingest(
        store,
        [
            normalise(
                {"type": "identify", "userId": "h", "traits": {"title": payload}, "timestamp": NOW},
                received_ms=NOW,
            ),
            normalise(
                {
                    "type": "track",
                    "userId": "h",
                    "event": payload,
                    "properties": {"note": payload},
                    "timestamp": NOW,
                },
                received_ms=NOW,
            ),
        ],
        source="test",
    )
    with store.connect() as conn:
        (ledger,) = score(conn, model, store.sources(), all_leads(NOW))
        # the payload matched itself as data: equals (1) + glob (4) of 7 fit, the event rule 8 of 8
        assert {line.rule_id for line in ledger.lines} == {"eq", "glb", "ev"}
        assert ledger.score == pytest.approx((5 / 7 * 100 + 100) / 2)
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 2


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('{attribute: "job_title; DROP TABLE leads", equals: x}', "is not a field name"),
        ('{attribute: "a\\"b", equals: x}', "is not a field name"),
        ('{attribute: t, regex: "' + "a" * 400 + '"}', "at most 300 are allowed"),
        ('{attribute: t, regex: "(a+)+$"}', "nests repetition"),
        ('{attribute: t, regex: "(x|y*)*z"}', "nests repetition"),
        # what RE2 (the SQLite engine) does not read: look-ahead, back-references, counts over 1,000
        ('{attribute: t, regex: "a(?=b)"}', r"3:50 rule r field when.regex: .*invalid perl operator: \(\?="),
        ('{attribute: t, regex: "(a)\\\\1"}', r"outside the portable subset: invalid escape sequence: \\1"),
        (
            '{attribute: t, regex: "a{1001}"}',
            r"outside the portable subset: invalid repetition size: \{1001\}",
        ),
        ('{attribute: t, equals: "' + "x" * 3000 + '"}', "at most 2000 are allowed"),
        # values no store can bind: validated, then publishing failed (PostgreSQL: NUL; both: 64 bits)
        ('{attribute: t, equals: "a\\0b"}', r"3:51 rule r field when.equals: has a NUL character"),
        ('{attribute: t, in: [a, "\\ud800"]}', r"3:51 rule r field when.in\[1\]: has a lone surrogate"),
        ("{attribute: t, gte: 99999999999999999999999}", r"3:48 rule r field when.gte: .* beyond 64 bits"),
        ("{attribute: t, lt: -9223372036854775809}", r"3:47 rule r field when.lt: .* beyond 64 bits"),
        ("{attribute: t, gte: .inf}", r"3:48 rule r field when.gte: .inf is not a finite number"),
        # numbers compare as 64-bit floats on every engine: past 2**53 not every integer is one, and
        # equals: 9007199254740993 would match 9007199254740992
        (
            "{attribute: t, equals: 9007199254740993}",
            r"3:51 rule r field when.equals: 9007199254740993 is not exact as a number .*"
            r"quote it to compare as text: '9007199254740993'",
        ),
        (
            "{attribute: t, in: [1, -9007199254740995]}",
            r"3:51 rule r field when.in\[1\]: -9007199254740995 is not exact",
        ),
        (
            "{attribute: t, between: [0, 9223372036854775807]}",
            r"field when.between\[1\]: 9223372036854775807 is not exact",
        ),
    ],
)
def test_hostile_conditions_are_refused(snippet: str, message: str) -> None:
    with pytest.raises(ModelValidationError, match=message):
        loads_model(f"model: m\nfit:\n  - {{id: r, name: R, when: {snippet}, points: 1}}\n")


@pytest.mark.timeout(120)
def test_regexes_that_backtrack_are_searched_in_linear_time_on_both_stores(store: Store) -> None:
    """``(a|aa)+$`` passes the nested-repetition check but backtracks exponentially in Python's ``re``
    (Fibonacci(n) ways to split n a's: 40 a's took over a minute), and ``a.*b.*c`` cubically (8,000
    characters: 163 s). SQLite searched with ``re`` on every rescore; both stores now answer at once.
    Lead x: 5,000 a's then "!" (``$`` is not reached: 0) and a note of 20,000 characters "abab…" with
    no c (0). Lead y: title "aaaa" (fit 10) and the note "a-b-c" (engagement 10)."""
    model = loads_model(
        "model: m\nfit:\n"
        "  - {id: t, name: T, when: {attribute: job_title, regex: '(a|aa)+$'}, points: 10}\n"
        "engagement:\n"
        "  - {id: n, name: N, event: {type: track, name: note}, where: {property: note, regex: 'a.*b.*c'},"
        " points: 10}\n"
        "scale: {fit_max: 10, engagement_max: 10}\n"
    )
    people = {"x": ("a" * 5000 + "!", "ab" * 10000), "y": ("aaaa", "a-b-c")}
    messages = []
    for user, (title, note) in people.items():
        identify = {"type": "identify", "userId": user, "traits": {"title": title}, "timestamp": NOW}
        track = {
            "type": "track",
            "userId": user,
            "event": "note",
            "properties": {"note": note},
            "timestamp": NOW,
        }
        messages += [normalise(identify, received_ms=NOW), normalise(track, received_ms=NOW)]
    ingest(store, messages, source="test")
    with store.connect() as conn:
        ledgers = score(conn, model, store.sources(), all_leads(NOW))
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
    scored = {
        users[ledger.lead_id]: (ledger.score, {line.rule_id for line in ledger.lines}) for ledger in ledgers
    }
    # y: fit 10 of 10 and engagement 10 of 10, weighted evenly: 100
    assert scored == {"x": (0.0, set()), "y": (100.0, {"t", "n"})}


def test_a_long_integer_id_quoted_matches_on_both_stores(store: Store) -> None:
    """A quoted id compares as text, the same on both stores (unquoted, 9007199254740993 is refused at
    load: no double holds it)."""
    model = loads_model(
        "model: m\nfit:\n  - {id: p, name: Partner, when: {attribute: partner_id, equals: '9007199254740993'},"
        " points: 10}\nscale: {fit_max: 10, weights: {fit: 1, engagement: 0}}\n"
    )
    assert _scores(store, model) == {"a": 100.0, "b": 0.0, "c": 100.0}


def test_numbers_past_2_53_compare_as_doubles_on_both_stores(store: Store) -> None:
    """One definition on every engine: a JSON number is read as a 64-bit float. The attribute
    9007199254740993 (2**53 + 1) reads as 2**53 (halfway between 2**53 and 2**53 + 2, rounded to the even
    one), so it equals 9007199254740992 and is not above it; SQLite compared the integer exactly (a: 0 on
    equals, 100 on gt) and PostgreSQL as a double."""
    model = loads_model(
        "model: m\nfit:\n"
        "  - {id: eq, name: Eq, when: {attribute: partner_id, equals: 9007199254740992}, points: 6}\n"
        "  - {id: gt, name: Gt, when: {attribute: partner_id, gt: 9007199254740992}, points: 4}\n"
        "scale: {fit_max: 10, weights: {fit: 1, engagement: 0}}\n"
    )
    # a (2**53 + 1 read as 2**53): equals, not above → 6 of 10; b (2**53): the same; c: the text of a
    # (a trait that is an integer's text is stored as the integer, ``ingest.attributes.coerce``): as a
    assert _scores(store, model) == {"a": 60.0, "b": 60.0, "c": 60.0}


def _scores(store: Store, model: ScoringModel) -> dict[str, float]:
    """Each lead's score (by user id) for partner ids a: 9007199254740993, b: 9007199254740992 (JSON
    integers) and c: "9007199254740993" (text)."""
    ingest(
        store,
        [
            normalise(
                {"type": "identify", "userId": u, "messageId": f"m-{u}", "traits": {"partnerId": v}},
                received_ms=NOW,
            )
            for u, v in (("a", 9007199254740993), ("b", 9007199254740992), ("c", "9007199254740993"))
        ],
        source="test",
    )
    with store.connect() as conn:
        ledgers = score(conn, model, store.sources(), all_leads(NOW))
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
    return {users[ledger.lead_id]: ledger.score for ledger in ledgers}


def test_event_names_and_windows_no_store_can_bind_are_refused() -> None:
    rule = "model: m\nengagement:\n  - {{id: e, name: E, event: {{type: track, name: {name}}}, points: 1{more}}}\n"
    with pytest.raises(ModelValidationError, match=r"3:49 rule e field event.name: has a NUL character"):
        loads_model(rule.format(name='"X\\0"', more=""))
    with pytest.raises(ModelValidationError, match=r"field window: .*longer than 10000 years"):
        loads_model(rule.format(name="X", more=", window: 99999999999999999999d"))
    assert loads_model(rule.format(name="X", more=", window: 520000w")).engagement[0].window == "520000w"


def test_hostile_names_and_sizes_are_refused() -> None:
    with pytest.raises(ModelValidationError, match="id"):
        loads_model(
            'model: m\nfit:\n  - {id: "r; DROP", name: R, when: {attribute: t, exists: true}, points: 1}\n'
        )
    rules = "".join(
        f"  - {{id: r{i}, name: R, when: {{attribute: t, exists: true}}, points: 1}}\n" for i in range(301)
    )
    with pytest.raises(ModelValidationError, match="at most 300 rules"):
        loads_model("model: m\nfit:\n" + rules)
    with pytest.raises(ModelValidationError, match="bytes; at most"):
        loads_model("model: m\ndescription: " + "x" * 5_000_001 + "\n")


def test_compiled_sql_grows_linearly_with_the_model(store: Store) -> None:
    """Deeply nested conditions cannot blow the SQL up: twice the rules, twice the text (no expansion)."""
    cond = "{attribute: t, equals: x}"
    for _ in range(10):
        cond = "{any: [" + cond + ", {not: {attribute: u, contains: y}}]}"

    def sql_length(rules: int) -> int:
        body = "".join(f"  - {{id: r{i}, name: R, when: {cond}, points: 1}}\n" for i in range(rules))
        model = loads_model("model: big\nfit:\n" + body)
        return len(
            str(
                compile_model(model, store.sources(), all_leads(NOW), engine=store.dialect).compile(
                    store.engine
                )
            )
        )

    small, large = sql_length(40), sql_length(80)
    assert 1.8 < large / small < 2.2


def test_csv_cells_never_start_a_formula() -> None:
    assert [csv_safe(v) for v in ("=SUM(A1)", "+1", "-2", "@x", "\tx", "ok", 5)] == [
        "'=SUM(A1)",
        "'+1",
        "'-2",
        "'@x",
        "'\tx",
        "ok",
        5,
    ]


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        # repetition-free ASCII patterns go to Python's re on ASCII text, the rest to RE2: one reading
        ("market|growth", "Head of GROWTH", True),
        ("^(head|chief)", "Chief of staff", True),
        ("^(head|chief)", "Deputy head", False),
        (r"\.pdf$", "deck.PDF", True),
        (
            r"\.pdf$",
            "deck.pdf\n",
            False,
        ),  # $ is the end of the text (Python's also matched before a final \n)
        (r"\.pdf$", "Übersicht.pdf", True),
        (r"^\d+$", "٣", False),  # \d is an ASCII digit (Python's also matched Arabic-Indic digits)
        ("(a|aa)+$", "aaaa", True),
        ("(a|aa)+$", "a" * 5000 + "!", False),
        # hostile text: a NUL, a lone surrogate (no UTF-8 store holds one; it reads as "?"), 100,000 characters
        ("a.*b", "a\x00b", True),
        ("market|growth", "\ud800 growth", True),
        ("^x+b$", "\ud800xb", False),
        ("^x+b$", "x" * 100_000 + "b", True),
    ],
)
def test_a_regex_reads_the_same_whichever_engine_searches(pattern: str, text: str, found: bool) -> None:
    assert regex_search.search(pattern, text) is found


def test_a_list_past_the_parameters_of_a_statement_publishes_and_scores_on_both_stores(store: Store) -> None:
    """A model may name lists of up to 200,000 values; each value was a bound parameter of the scoring
    statement, and past 65,535 of them PostgreSQL refused the statement: publishing failed (SQLite's limit
    is 32,766 on many builds). 66,000 values and the one the lead's domain is: 10 of 10 fit points."""
    values = ", ".join(f"d{i}.example" for i in range(66_000))
    model = loads_model(
        f"model: m\nlists:\n  big: {{values: [{values}, Good.Example]}}\n"
        "fit:\n  - {id: t, name: Target, when: {attribute: email_domain, in_list: big}, points: 10}\n"
        "scale: {fit_max: 10, weights: {fit: 1, engagement: 0}}\n"
    )
    ingest(
        store,
        [
            normalise(
                {
                    "type": "identify",
                    "userId": u,
                    "messageId": f"m-{u}",
                    "traits": {"email": f"{u}@{domain}"},
                },
                received_ms=NOW,
            )
            for u, domain in (("a", "good.example"), ("b", "other.example"))
        ],
        source="test",
    )
    publish(store, model)
    with store.connect() as conn:
        ledgers = score(conn, model, store.sources(), all_leads(NOW))
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
    assert {users[ledger.lead_id]: ledger.score for ledger in ledgers} == {"a": 100.0, "b": 0.0}


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        # 100 / 5e-324 is infinite: a lead's 0 fit points times it were NaN, NULL on SQLite, and scoring
        # every lead failed (TypeError reading the row); 1e+308 + 1e+308 weights overflow to infinity and
        # every score was 0
        ("{fit_max: 5.0e-324}", r"3:18 field scale.fit_max: fit_max must be at least 1e-06, not 5e-324"),
        ("{engagement_max: .inf}", r"3:25 field scale.engagement_max: .inf is not a finite number"),
        (
            "{weights: {fit: 1.0e+308, engagement: 1.0e+308}}",
            r"3:24 field scale.weights.fit: fit must be at most 1e\+12, not 1e\+308",
        ),
    ],
)
def test_a_scale_no_double_can_compute_is_refused_with_its_position(scale: str, message: str) -> None:
    with pytest.raises(ModelValidationError, match=message):
        loads_model(
            "model: m\nfit: [{id: r, name: R, when: {attribute: t, exists: true}, points: 1}]\n"
            f"scale: {scale}\n"
        )


def test_an_in_of_70000_numbers_publishes_and_scores_on_both_stores(store: Store) -> None:
    """``in:`` with numbers compared each number as its own bound parameter: 70,000 of them (a YAML of
    500 KB, well within a model's 5 MB) made publishing fail on PostgreSQL. The lead's code 123456 is in
    the list (10 of 10), 0.5 is not; the same list on a text field compares the numbers' texts."""
    numbers = ", ".join(str(i * 2) for i in range(70_000))
    model = loads_model(
        "model: m\nfit:\n"
        f"  - {{id: n, name: Code, when: {{attribute: code, in: [{numbers}, 0.25]}}, points: 6}}\n"
        f"  - {{id: t, name: Domain, when: {{attribute: email_domain, in: [{numbers}]}}, points: 4}}\n"
        "scale: {fit_max: 10, weights: {fit: 1, engagement: 0}}\n"
    )
    ingest(
        store,
        [
            normalise(
                {
                    "type": "identify",
                    "userId": u,
                    "messageId": f"m-{u}",
                    "traits": {"code": code, "email": email},
                },
                received_ms=NOW,
            )
            for u, code, email in (("a", 123456, "a@a.example"), ("b", 0.5, "b@1000"), ("c", 0.25, "c@3"))
        ],
        source="test",
    )
    publish(store, model)
    with store.connect() as conn:
        ledgers = score(conn, model, store.sources(), all_leads(NOW))
        users = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
    # a: code in the list (6); b: 0.5 is not, its domain "1000" is (4); c: 0.25 is (6), "3" is odd (0)
    assert {users[ledger.lead_id]: ledger.score for ledger in ledgers} == {"a": 60.0, "b": 40.0, "c": 60.0}
