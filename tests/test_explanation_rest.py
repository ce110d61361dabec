"""The events an explanation leaves out of a line (``Explanation.line_rest``) and the lead page's rest row.

Model (default scale: 1 raw engagement point = 0.5 score points): group ``web`` capped at 10 raw;
``pricing`` (once, 8 raw, in web) and ``blog`` (each, 5 raw, capped at 12 raw, in web). The lead viewed
pricing at minutes 1, 2 and 3 (p1-p3) and the blog at minutes 4 to 7 (b1-b4).

pricing: 8 raw = 4 points, all on p3 (the newest); p1 and p2 carry 0. blog: 4 x 5 = 20 raw, capped at 12:
6 points, 1.5 a visit. Group web: 8 + 12 = 20 raw held at 10, factor 0.5, a line of -5: p3 -2, each blog
visit -0.75. Score 4 + 6 - 5 = 5.
"""

from __future__ import annotations

from typing import Any

import pytest

from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.explain import explain
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import all_leads
from leadscore.store import Store
from leadscore.store.people import find_lead

T0 = 1_700_000_000_000
MINUTE = 60_000
AS_OF = T0 + 60 * MINUTE
MODEL = loads_model("""
model: rest
groups:
  - {id: web, name: Website, cap: 10}
engagement:
  - {id: pricing, name: Pricing, kind: once, event: {type: page}, where: {property: path, prefix: /pricing}, points: 8, group: web}
  - {id: blog, name: Blog, event: {type: page}, where: {property: path, prefix: /blog}, points: 5, cap: 12, group: web}
""")


def _page(message_id: str, minute: int, path: str) -> dict[str, Any]:
    return {"type": "page", "userId": "ann", "messageId": message_id, "timestamp": T0 + minute * MINUTE,
            "properties": {"path": path}}  # fmt: skip


def _explained(store: Store, events_per_line: int = 100) -> Any:
    pages = [_page(f"p{i}", i, "/pricing") for i in (1, 2, 3)]
    pages += [_page(f"b{i}", 3 + i, f"/blog/{i}") for i in (1, 2, 3, 4)]
    ingest(store, [normalise(m, received_ms=AS_OF) for m in pages], source="test")
    with store.connect() as conn:
        lead = find_lead(conn, external_id="ann")
        [found] = explain(conn, MODEL, store.sources(), all_leads(AS_OF, [lead]), events_per_line)
    assert found.ledger.score == pytest.approx(5.0)
    return found


def test_an_adjustment_lines_rest_counts_only_the_events_with_a_share_in_it(store: Store) -> None:
    """Two events listed per rule: pricing lists p3 and p2 (p1 left out, worth 0 everywhere), blog b4 and
    b3 (b2 and b1 left out). The group line's events are those with a share in it: p3 and b1-b4; listed
    p3, b4, b3, so 2 left out (b2, b1: -0.75 each), not 3 (p1 has no share of the group's cap). Before,
    the group line counted p1 among its left-out events (and the lead page said 6 events behind it)."""
    found = _explained(store, events_per_line=2)
    assert found.line_rest("pricing") == (1, pytest.approx(0.0))
    assert found.line_rest("blog") == (2, pytest.approx(3.0))
    count, points = found.line_rest("group:web")
    assert (count, points) == (2, pytest.approx(-1.5))
    [group] = [line for line in found.as_dict()["lines"] if line["rule_id"] == "group:web"]
    assert (group["events_omitted"], len(group["events"])) == (2, 3)


def test_the_lead_page_shows_an_adjustment_lines_newest_events_and_the_older_rest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group line's events across its rules, newest first: b4 (minute 7), b3 (6), b2, b1, p3 (3). With
    two shown: b4 and b3 (-0.75 each), and 3 older events worth -2 - 0.75 - 0.75 = -3.5; the line -5.00.
    Before, the page cut the list in rule order: p3 and b4 shown as the 'newest 2', b3 (newer than p3) in
    the 'older events'."""
    from leadscore.web.data import lead as page

    monkeypatch.setattr(page, "EVENTS_SHOWN", 2)
    rows = {row["rule_id"]: row for row in page.ledger_rows(MODEL, _explained(store))}
    group = rows["group:web"]
    assert [(e["message_id"], e["shown"]) for e in group["events"]] == [("b4", -0.75), ("b3", -0.75)]
    assert group["rest"]["count"] == 3 and group["rest"]["shown"] == pytest.approx(-3.5)
    assert group["events_total"] == 5 and group["shown"] == pytest.approx(-5.0)
    blog = rows["blog"]
    assert [e["message_id"] for e in blog["events"]] == ["b4", "b3"]
    assert (blog["rest"]["count"], blog["events_total"]) == (2, 4)


PROPERTY_MODEL = loads_model("""
model: rest-property
defaults: {half_life: 3d}
groups:
  - {id: web, name: Website, cap: 6}
engagement:
  - {id: pricing, name: Pricing, kind: once, event: {type: page}, where: {property: path, prefix: /pricing}, points: 8, group: web}
  - {id: blog, name: Blog, event: {type: page}, where: {property: path, prefix: /blog}, points: 2, cap: 9, group: web}
  - {id: careers, name: Careers, event: {type: page}, where: {property: path, prefix: /careers}, points: -4}
  - {id: opens, name: Opens, kind: threshold, event: {type: track, name: O}, at_least: 3, within: 7d, points: 6}
  - {id: rec, name: Rec, kind: recency, event: {type: track, name: O}, steps: [{within: 2d, points: 5}, {within: 14d, points: 2}]}
  - {id: drop, name: Drop, kind: ratio, event: {type: page}, within: 7d, at_most: 0.5, points: -3}
  - {id: team, name: Team, kind: threshold, scope: account, event: {type: track, name: O}, count: {distinct: person}, at_least: 2, within: 30d, points: 4}
scale: {engagement_max: 15}
""")


@pytest.mark.parametrize("seed", [0, 5, 11, 15, 19])
def test_every_line_lists_and_leaves_out_what_the_full_listing_has(store: Store, seed: int) -> None:
    """A property over random stores (every rule kind, a group cap, the floor and the clamp, an account rule):
    with 1 to 4 events listed per rule, each line's listed events and ``line_rest``'s count are as many as
    the same explanation listing every event has behind that line, and the listed shares and the rest add
    up to the line. Before, these seeds left out events of a group, floor or clamp line that have no share
    in it (a once or recency rule's older matches)."""
    import random

    rnd = random.Random(seed)
    day = 86_400_000
    users = ["a", "b", "c"]
    messages: list[dict[str, Any]] = [
        {"type": "group", "userId": u, "groupId": "acme", "messageId": f"g{u}", "timestamp": T0}
        for u in users
        if rnd.random() < 0.7
    ]
    for i in range(rnd.randint(0, 40)):
        user, ts = rnd.choice(users), T0 + rnd.randint(0, 20) * day // 2
        if rnd.random() < 0.4:
            messages.append(
                {"type": "track", "event": "O", "userId": user, "messageId": f"m{i}", "timestamp": ts}
            )
        else:
            path = rnd.choice(["/pricing", "/blog", "/careers", "/x"])
            messages.append({"type": "page", "userId": user, "messageId": f"m{i}", "timestamp": ts,
                             "properties": {"path": path}})  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 30 * day) for m in messages], source="test")
    as_of, listed = T0 + rnd.randint(0, 25) * day // 2, rnd.randint(1, 4)
    with store.connect() as conn:
        cut = explain(conn, PROPERTY_MODEL, store.sources(), all_leads(as_of), listed)
        full = explain(conn, PROPERTY_MODEL, store.sources(), all_leads(as_of), 1_000_000)
    for some, every in zip(cut, full, strict=True):
        for line in some.ledger.lines:
            shown, (more, rest) = some.line_events(line.rule_id), some.line_rest(line.rule_id)
            behind = every.line_events(line.rule_id)
            assert len(behind) == len(shown) + more, (line.rule_id, len(behind), len(shown), more)
            assert sum(v for _, v in shown) + rest == pytest.approx(line.score_points, abs=1e-9)
