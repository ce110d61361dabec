"""A shown score never contradicts the stage, grade or band beside it: every screen cuts a score to its
decimals (``scoring.shown.cut``), never rounds it up. A lead at 59.996 is not an MQL at 60 nor grade B
at a fit of 60; rounded, the lead list, the lead page, ``leadscore score`` (table and CSV) and the
payload of a webhook or mail showed her at 60.0 (the list's fit column: 60) beside grade C and stage
lead; the reason beside it said +60.0."""

from __future__ import annotations

import csv
import io
import re

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.compile.dialects import kept
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.context import lead_context
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.history import score_path
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.shown import apportion, cut, cut_text
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import lead_stages
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, signed_in

# fit only, 100 points = 100: a marketing title gives a fit and a score of 59.996 (grade C: B is 60;
# band warm: hot is 60; stage lead: MQL at 60), a sales title exactly 60 (grade B, hot, MQL)
MODEL = """
model: edge
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, equals: marketing}, points: 59.996}
  - {id: sales, name: Sales role, when: {attribute: job_title, equals: sales}, points: 60}
scale: {weights: {fit: 1, engagement: 0}, grades: {A: 90, B: 60, C: 30}, bands: {hot: 60, warm: 30}}
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
    - {id: mql, name: MQL}
  transitions:
    - {id: qualified, from: [lead], to: mql, when: {score_at_least: 60}}
"""
AS_OF = "2024-06-01T00:00:00Z"


def test_cut_by_hand() -> None:
    assert cut(59.996) == 59.9 and cut(59.996, 2) == 59.99 and cut(59.996, 0) == 59.0
    assert cut(60.0) == 60.0 and cut(100.0, 2) == 100.0
    # a decay that does not reach 60 is below 60 on the screen too; float noise under 60 is 60
    assert cut(59.9999) == 59.9 and cut(59.9999999) == 59.9
    assert cut(59.99999999999999) == 60.0 and cut(1 + 1 / 3 + 1 / 3 + 1 / 3, 2) == 2.0
    # 0.1 + 0.2 is the float 0.30000000000000004: 0.3; the float of 0.3 (0.29999999999999998…) is 0.3
    assert cut(0.1 + 0.2) == 0.3 and cut(0.3) == 0.3
    assert cut(-1.25) == -1.3  # towards −∞: a shown −1.2 would be above the value
    assert cut_text(59.996) == "59.9" and cut_text(59.996, 0) == "59" and cut_text(None) == "—"
    assert cut_text(1234.56, grouping=True) == "1,234.5"
    # the ledger's shown lines add up to the whole as shown: 30.00 + 29.99 = 59.99
    assert apportion([30.0, 29.996], 59.996) == [30.0, 29.99]
    assert score_path([{"score": 0.0}, {"score": 59.996}, {"score": 60.0}]) == "0 → 59.9 → 60"


@given(st.floats(min_value=-1000, max_value=1000), st.integers(min_value=-10_000, max_value=10_000))
def test_a_cut_score_is_at_a_threshold_exactly_when_the_score_is(value: float, tenths: int) -> None:
    threshold = float(f"{tenths / 10:.1f}")  # a threshold of one decimal, as a model's YAML gives it
    if threshold - 1e-7 < value < threshold:
        value = threshold - 1e-7  # float noise under a threshold shows as the threshold (above)
    assert (cut(value) >= threshold) == (value >= threshold)


@given(
    st.floats(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=2),
    st.integers(min_value=0, max_value=10_000),
)
def test_a_kept_score_is_shown_at_a_threshold_exactly_when_every_gate_reads_it_there(
    value: float, places: int, units: int
) -> None:
    """The query keeps a score to a millionth (``Quantized``; ``kept`` in Python): float noise under a
    threshold (0.8 + 32.8 + 26.4 = 59.99999999999999) is the threshold for the gates too, so no margin is
    left where a screen shows the threshold (``cut`` reads a number within a millionth of a shown unit
    below it as that unit) while a gate says no, at any decimals a screen shows."""
    score = kept(value)
    threshold = float(f"{min(units, 100 * 10**places) / 10**places:.{places}f}")
    assert (cut(score, places) >= threshold) == (score >= threshold)


def test_kept_by_hand() -> None:
    assert kept(0.8 + 32.8 + 26.4) == 60.0 and 0.8 + 32.8 + 26.4 < 60  # grade B at 60, not C
    assert kept(0.1 + 0.2) == 0.3 and kept(74.99999999997726) == 75.0  # 5 × 0.2 + 2 of 4 on PostgreSQL
    assert kept(59.9999994) == 59.999999 and kept(17.82842712474619) == 17.828427
    assert kept(100.0) == 100.0 and kept(0.0) == 0.0


def _identify(user: str, title: str) -> dict[str, object]:
    return {"type": "identify", "userId": user, "messageId": f"i-{user}", "timestamp": "2024-05-01T00:00:00Z",
            "traits": {"job_title": title, "email": f"{user}@example.test"}}  # fmt: skip


@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(min_value=0, max_value=3))
def test_any_finite_number_is_cut_without_error(value: float, places: int) -> None:
    """Every number a page shows goes through ``cut`` (the dashboard's ``num`` filter), not only scores:
    an account's ``seats`` sent by a write key as 1e30 reached it, and the default decimal context's 28
    digits refused anything from 1e21 up (the account page was a 500). The cut is at most a shown unit
    below the value, and never above it but for float noise."""
    shown = cut(value, places)
    unit = 10.0**-places
    assert (
        shown <= value + unit * 1e-6 * max(1.0, abs(value))
        and shown > value - unit * (1 + 1e-9) - abs(value) * 1e-15
    )
    assert cut_text(value, places) == f"{shown:.{places}f}"


def test_cut_of_the_largest_numbers_by_hand() -> None:
    assert cut_text(1e21) == "1000000000000000000000.0"
    assert cut_text(-1e21, 0) == "-1000000000000000000000"
    assert cut(1.7976931348623157e308, 2) == 1.7976931348623157e308
    assert cut(-5e-324, 1) == 0.0 and cut(5e-324) == 0.0


def test_every_screen_shows_a_lead_below_the_threshold_below_it(store: Store) -> None:
    as_of = parse_time(AS_OF, "as_of")
    publish(store, loads_model(MODEL, "edge.yaml"), as_of=as_of)
    messages = [_identify("ann", "marketing"), _identify("bea", "sales")]
    ingest(store, [normalise(m, received_ms=as_of) for m in messages], source="test", as_of=as_of)
    settings = Settings(database_url=str(store.url), run_processor=False)
    run_round(store, settings, now_ms=as_of, deliver=False)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        ann, bea = find_lead(conn, external_id="ann"), find_lead(conn, external_id="bea")
        stages = dict(conn.execute(select(lead_stages.c.lead_id, lead_stages.c.stage)).all())
        assert ann is not None and bea is not None
        # the lifecycle: ann (59.996) is no MQL, bea (60) is
        assert stages.get(ann, "lead") == "lead" and stages[bea] == "mql"
        # what a webhook's or a mail's template reads
        context = lead_context(conn, loads_model(MODEL), ann, settings)
        told = context["lead"]
        assert (told["score"], told["fit_score"], told["grade"], told["band"]) == (59.9, 59.9, "C", "warm")
        assert [r["points"] for r in context["reasons"]] == [59.9]
        assert lead_context(conn, loads_model(MODEL), bea, settings)["lead"]["score"] == 60.0

    app = create_app(settings, store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        listing = client.get("/leads")
        page = client.get(f"/leads/{ann}")
    assert listing.status_code == 200 and page.status_code == 200
    rows = {
        m[0]: m[1:]
        for m in re.findall(
            r'<tr>\s*<td><a href="/leads/(\d+)">.*?<td class="num">([^<]*)</td>\s*<td class="num">([^<]*)</td>'
            r'\s*<td class="num">[^<]*</td>\s*<td>([^<]*)</td>',
            listing.text,
            re.S,
        )
    }
    # score, fit (no decimal) and grade/level of each row
    assert rows[str(ann)] == ("59.9", "59", "C4") and rows[str(bea)] == ("60.0", "60", "B4")
    assert '<dt>Score</dt><dd class="big">59.9</dd>' in page.text
    assert "<dt>Fit</dt><dd>59.9 (grade C)</dd>" in page.text
    ledger = page.text[page.text.index('<table class="ledger"') :]
    ledger = ledger[: ledger.index("</table>")]
    # the line and the total, at two decimals: 59.99, adding up
    assert re.findall(r'<td class="num"><strong>([^<]+)</strong></td>', ledger) == ["+59.99", "59.99"]

    db = ["--db", str(store.url)]
    result = CliRunner().invoke(cli, ["score", "--format", "csv", "--as-of", AS_OF, *db])
    assert result.exit_code == 0, result.output
    scored = {r["lead_id"]: r for r in csv.DictReader(io.StringIO(result.output))}
    assert (scored[str(ann)]["score"], scored[str(ann)]["fit_score"]) == ("59.99", "59.99")
    assert scored[str(ann)]["top_reasons"] == "Marketing role +59.9"
    assert scored[str(bea)]["score"] == "60.0"
    table = CliRunner().invoke(cli, ["score", "--as-of", AS_OF, *db], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    ann_row = next(line for line in table.output.splitlines() if "ann@example.test" in line)
    # score, fit, engagement and the top reason, a part of the score as shown
    assert re.findall(r"[+]?\b\d+\.\d\b", ann_row) == ["59.9", "59.9", "0.0", "+59.9"]
    explained = CliRunner().invoke(cli, ["explain", "ann", "--as-of", AS_OF, *db], env={"COLUMNS": "200"})
    assert explained.exit_code == 0, explained.output
    assert "score 59.9 (fit 59.9, engagement 0.0), grade C" in explained.output
