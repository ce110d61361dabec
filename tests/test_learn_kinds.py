"""What the learner reads from real-looking data: track events told apart by a property (a demo request
is not an e-book download), free-text job titles by the words they mention, and the lead's and the
account's copy of one firmographic as one feature with monotone bins. Each learned model, compiled,
scores exactly as the estimator."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from leadscore.ingest.csv_import import ImportOptions, import_leads
from leadscore.ingest.segment import ms_to_iso, normalise
from leadscore.learn.binning import bin_numeric
from leadscore.learn.dataset import attribute_value, choose_columns, csv_data
from leadscore.learn.features import EventCount, TitleWords
from leadscore.learn.labels import DAY_MS
from leadscore.learn.scorecard import Scorecard
from leadscore.learn.store_data import attribute_rows_at, event_features, event_kinds, feature_matrix
from leadscore.learn.to_model import to_model
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import all_leads, score, score_points
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import leads

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
CUTOFF = T0 + 10 * DAY_MS


def _identify(user: str, traits: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": f"{user}-id", "timestamp": ms_to_iso(T0),
            "traits": {"email": f"{user}@{user}.example", **(traits or {})}}  # fmt: skip


def test_track_events_are_told_apart_by_a_property_that_splits_their_leads(store: Store) -> None:
    # 10 leads request a demo (8 convert), 10 download an e-book (1 converts); every form has plan "free"
    # (one value: it tells nothing apart) and a submission id (20 values: an id, not a kind)
    raw: list[dict[str, Any]] = []
    for n in range(20):
        user, form = (f"d{n}", "Demo Request") if n < 10 else (f"e{n}", "E-book")
        raw += [_identify(user), {"type": "track", "event": "Form Submitted", "userId": user,
                "messageId": f"{user}-f", "timestamp": ms_to_iso(T0 + DAY_MS),
                "properties": {"form": form, "plan": "free", "submission": f"s{n}"}}]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 20 * DAY_MS) for m in raw], source="test")
    with store.connect() as conn:
        kinds = {label: where for label, _, where in event_kinds(conn)}
        assert kinds == {
            "Form Submitted": None,
            "Form Submitted: demo request": {"property": "form", "equals": "demo request"},
            "Form Submitted: e-book": {"property": "form", "equals": "e-book"},
        }
        counts = [f for f in event_features(conn) if isinstance(f.source, EventCount) and f.source.window == "30d"
                  and f.source.distinct is None and f.source.where is not None]  # fmt: skip
        pairs = [(lead, CUTOFF) for lead in (find_lead(conn, external_id=u) for u in
                 [f"d{n}" for n in range(10)] + [f"e{n}" for n in range(10, 20)]) if lead]  # fmt: skip
        X = feature_matrix(conn, store.sources(), counts, pairs)
    assert [f.name for f in counts] == ["Form Submitted: demo request (30d)", "Form Submitted: e-book (30d)"]
    assert X.T.tolist() == [[1] * 10 + [0] * 10, [0] * 10 + [1] * 10]
    y = np.asarray([int(n < 8) for n in range(10)] + [int(n == 0) for n in range(10)])
    sc = Scorecard(counts, min_class_count=1, C=1.0, min_bin_share=0.05).fit(X, y)
    model = to_model(sc, "forms")
    demo = [r for r in model.engagement if r.points > 0 and "demo request" in r.name]
    assert [r.name for r in demo] == ["Form Submitted: demo request: 1+ in 30 days"]
    with store.connect() as conn:
        compiled = {
            (lg.lead_id, lg.as_of): lg.score for lg in score_points(conn, model, store.sources(), pairs)
        }
    estimated = sc.score_100(X)
    assert max(abs(compiled[p] - e) for p, e in zip(pairs, estimated, strict=True)) < 1e-9
    # a demo request scores above an e-book download
    assert estimated[0] > estimated[10]


SENIORITY = ("VP", "Head", "Director", "Analyst", "Specialist", "Coordinator")
FUNCTIONS = ("Marketing", "Sales", "Finance", "Operations", "IT")
REGIONS = ("EMEA", "APAC", "Nordics", "DACH", "US", "UK", "LATAM")


def test_a_free_text_title_is_learned_by_the_words_it_mentions(store: Store, tmp_path: Path) -> None:
    # 210 different titles ("VP of Marketing EMEA"), each twice: no title is common, so as categories every
    # row would fall into "other"; the signal is in the seniority word (VP, Head, Director convert)
    titles = [f"{s} of {f} {r}" for s in SENIORITY for f in FUNCTIONS for r in REGIONS]
    rows = []
    for i in range(420):
        title = titles[i % 210]
        senior = title.split()[0] in ("VP", "Head", "Director")
        rows.append([f"p{i}", title, "yes" if (senior and i % 4 != 0) or i % 9 == 0 else "no"])
    path = tmp_path / "titles.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["Id", "Job Title", "Converted"], *rows])
    data = csv_data(path, "Converted", id_column="Id")
    # by rows: the group (210), each function (84), each other seniority (70), regions (60: first 3 by name)
    assert [f.name for f in data.features] == [
        "job_title mentions VP / Head / Director",
        *(f"job_title mentions {w}" for w in ("finance", "it", "marketing", "operations", "sales")),
        *(f"job_title mentions {w}" for w in ("analyst", "coordinator", "specialist")),
        *(f"job_title mentions {w}" for w in ("apac", "dach", "emea")),
    ]
    group = data.features[0].source
    assert isinstance(group, TitleWords) and group.words == ("vp", "head", "director")
    assert data.X[:6, 0].tolist() == [True] * 6 and data.X[140:146, 0].tolist() == [False] * 6
    sc = Scorecard(data.features, min_class_count=20, max_bins=6, min_bin_share=0.03).fit(data.X, data.y)
    model = to_model(sc, "titles")
    points = {r.name: r.points for r in model.fit}
    assert points["Job title mentions VP / Head / Director"] == max(points.values()) > 0
    import_leads(store, path, ImportOptions(mapping={"Id": "user_id"}, ignore=frozenset({"Converted"})))
    with store.connect() as conn:
        external = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        compiled = {
            external[lg.lead_id]: lg.score for lg in score(conn, model, store.sources(), all_leads(T0))
        }
    expected = dict(zip(data.keys, sc.score_100(data.X).tolist(), strict=True))
    assert len(compiled) == len(expected) == 420
    assert [k for k, v in expected.items() if abs(compiled[k] - v) > 1e-9] == []
    assert expected["p1"] > expected["p141"]  # VP of Marketing APAC above Analyst of Marketing APAC


def test_the_leads_and_the_accounts_employees_are_one_feature_read_from_the_account_first(
    store: Store,
) -> None:
    # (account's employees or none, lead's employees, converted of 12)
    groups = [(500, 5, 9), (None, 500, 9), (10, 900, 2), (None, 10, 2)]
    raw: list[dict[str, Any]] = []
    for g, (account, own, _) in enumerate(groups):
        for n in range(12):
            user = f"g{g}n{n}"
            raw.append(_identify(user, {"employees": own, "industry": ("a", "b")[n % 2]}))
            if account is not None:
                raw.append({"type": "group", "userId": user, "groupId": f"acc{g}{n}", "messageId": f"{user}-g",
                            "timestamp": ms_to_iso(T0), "traits": {"name": f"Acc {g}{n}", "employees": account}})  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + DAY_MS) for m in raw], source="test")
    with store.connect() as conn:
        ids = [find_lead(conn, external_id=f"g{g}n{n}") for g in range(4) for n in range(12)]
        attrs = attribute_rows_at(conn, [(i, T0 + DAY_MS) for i in ids if i])
    rows = [attrs[(i, T0 + DAY_MS)] for i in ids if i]
    names = sorted({k for r in rows for k in r} - {"email", "account.group_id", "account.name"})
    features, dropped = choose_columns(rows, names)
    assert [f.name for f in features] == ["employees (account, else lead)", "industry"]
    assert ("employees", "read as account.employees where the account has none") in dropped
    X = np.asarray([[attribute_value(f, r) for f in features] for r in rows], dtype=object)
    assert X[:, 0].tolist() == [500] * 24 + [10] * 24
    y = np.asarray([int(n < conv) for _, _, conv in groups for n in range(12)])
    sc = Scorecard(features, min_class_count=1, C=1.0, min_bin_share=0.05).fit(X, y)
    model = to_model(sc, "firmographics")
    assert any(r.name == "employees (account, else lead) ≥ 500" and r.points > 0 for r in model.fit)
    pairs = [(i, T0 + DAY_MS) for i in ids if i]
    with store.connect() as conn:
        compiled = {lg.lead_id: lg.score for lg in score_points(conn, model, store.sources(), pairs)}
    estimated = sc.score_100(X)
    assert max(abs(compiled[i] - e) for (i, _), e in zip(pairs, estimated, strict=True)) < 1e-9
    # the stale lead copy (5, 900) changes nothing: the account's value is read
    assert estimated[0] == estimated[12] and estimated[24] == estimated[36] and estimated[0] > estimated[24]


def test_firmographic_bins_are_monotone_not_zig_zag() -> None:
    # employees 1, 2, 3, 4 (100 rows each) converting 20, 60, 30, 80: the rate falls from 2 to 3
    x = np.repeat([1.0, 2.0, 3.0, 4.0], 100)
    y = np.concatenate([np.arange(100) < k for k in (20, 60, 30, 80)]).astype(int)
    free = bin_numeric(x, y, max_bins=6, min_count=1, max_prebins=8)
    assert free.edges == (2.0, 3.0, 4.0)
    # monotone: 2 and 3 become one bin (90 of 200), rising 20 %, 45 %, 80 %
    mono = bin_numeric(x, y, max_bins=6, min_count=1, max_prebins=8, monotone=True)
    assert mono.edges == (2.0, 4.0) and mono.counts == (100, 200, 100) and mono.events == (20, 90, 80)
