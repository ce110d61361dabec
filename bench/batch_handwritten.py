"""bench/model.yaml written by hand for DuckDB, and as pandas and as a plain Python loop (baselines).

Each returns ``lead_id, fit_score, engagement_score, score`` for every lead as of ``as_of``, over the four
relations as ``parquet_gen.py`` writes them. The DuckDB query follows ``handwritten.POSTGRESQL`` with
DuckDB idioms (``->>``, ``regexp_matches``, ``json_type``) and what DuckDB's profiler showed (see
``duckdb_query``); bench/batch.py checks all of them against the compiled model (to half a millionth,
as it keeps scores) before it times anything.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

D = 86_400_000
FREE_MAIL = {"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com"}
COMPETITORS = {"rivalscore.io", "leadly.com"}
TARGETS = {"acme-0.com", "acme-7.com", "acme-13.com", "acme-42.com", "acme-99.com", "acme-123.com"}
NORDICS_DACH = {"se", "dk", "no", "fi", "de", "at", "ch"}
NUMBER = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def duckdb_query(as_of: int, events: str, identities: str, leads: str, accounts: str) -> str:
    """The model for DuckDB, tuned with its profiler: aggregates take ``CASE WHEN match THEN x END`` (DuckDB
    computes a FILTER aggregate's argument for every input row, a CASE branch only where it matches),
    prefixes are ``ILIKE`` without an ESCAPE clause (faster than ``lower()`` once per event), a decay weight
    is summed and multiplied by the points after the sum, and rows group by ``lead_id`` alone."""
    hl = {days: f"CAST({days * D} AS DOUBLE)" for days in (14, 30, 45, 60)}
    page, track = "type = 'page'", "type = 'track'"
    return f"""
WITH ev AS (
    SELECT i.lead_id, e.ts, e.type, e.name, e.path, e.properties, CAST({as_of} - e.ts AS DOUBLE) AS age
    FROM {identities} AS i
    JOIN {events} AS e ON e.person_key = i.key
    WHERE e.ts <= {as_of} AND e.type IN ('page', 'track')
),
agg AS (
    SELECT
        lead_id,
        coalesce(sum(CASE WHEN {page} AND path ILIKE '/blog/%' THEN power(0.5, age / {hl[30]}) END), 0) AS blog,
        3.0 * coalesce(sum(CASE WHEN {page} AND age < {90 * D} AND path ILIKE '/product/%'
                                THEN power(0.5, age / {hl[45]}) END), 0) AS product,
        max(CASE WHEN {page} AND path ILIKE '/pricing%' THEN ts END) AS pricing_last,
        max(CASE WHEN {page} AND path ILIKE '/customers/%' THEN ts END) AS story_last,
        count(CASE WHEN {page} AND age < {60 * D} AND path ILIKE '/careers%' THEN 1 END) > 0 AS careers,
        coalesce(sum(CASE WHEN {track} AND name = 'Email Opened' THEN power(0.5, age / {hl[45]}) END), 0) AS opens,
        3.0 * coalesce(sum(CASE WHEN {track} AND name = 'Email Clicked' THEN power(0.5, age / {hl[45]}) END), 0)
            AS clicks,
        10.0 * coalesce(sum(CASE WHEN {track} AND name = 'Ebook Downloaded' THEN power(0.5, age / {hl[45]}) END), 0)
            AS ebooks,
        max(CASE WHEN {track} AND name = 'Webinar Attended'
                      AND json_type(properties, '$.minutes') IN {NUMBER}
                      AND CAST(properties ->> '$.minutes' AS DOUBLE) >= 20 THEN ts END) AS webinar_last,
        count(CASE WHEN {track} AND name = 'Unsubscribed' THEN 1 END) > 0 AS unsubscribed,
        count(CASE WHEN {page} AND age < {30 * D} THEN 1 END) AS views_30d,
        count(CASE WHEN {page} AND age < {7 * D} AND path ILIKE '/pricing%' THEN 1 END) AS pricing_7d
    FROM ev
    GROUP BY lead_id
),
points AS (
    SELECT
        l.id AS lead_id,
        (CASE WHEN regexp_matches(l.attributes ->> '$.job_title', 'market|growth|demand gen', 'i') THEN 15 ELSE 0 END)
        + (CASE WHEN lower(l.attributes ->> '$.seniority') IN ('director', 'vp', 'c-level')
                  OR (l.attributes ->> '$.job_title') ILIKE '%head of%' THEN 10 ELSE 0 END)
        + (CASE WHEN json_type(a.attributes, '$.employees') IN {NUMBER}
                 AND CAST(a.attributes ->> '$.employees' AS DOUBLE) BETWEEN 50 AND 1000 THEN 20 ELSE 0 END)
        + (CASE WHEN lower(a.attributes ->> '$.industry') IN ('software', 'saas', 'fintech') THEN 10 ELSE 0 END)
        + (CASE WHEN lower(l.attributes ->> '$.country') IN ('se', 'dk', 'no', 'fi', 'de', 'at', 'ch')
                THEN 5 ELSE 0 END)
        + (CASE WHEN lower(a.domain) IN ('acme-0.com', 'acme-7.com', 'acme-13.com', 'acme-42.com', 'acme-99.com',
                                         'acme-123.com') THEN 20 ELSE 0 END)
        + (CASE WHEN lower(l.email_domain) IN ('gmail.com', 'yahoo.com', 'hotmail.com', 'outlook.com', 'icloud.com')
                THEN -15 ELSE 0 END)
        + (CASE WHEN lower(l.email_domain) IN ('rivalscore.io', 'leadly.com') THEN -50 ELSE 0 END) AS fit,
        CASE WHEN g.lead_id IS NULL THEN 0.0 ELSE
            least(g.blog, 10.0)
            + least(g.product, 15.0)
            + coalesce(10.0 * power(0.5, ({as_of} - g.pricing_last) / {hl[14]}), 0.0)
            + coalesce(5.0 * power(0.5, ({as_of} - g.story_last) / {hl[45]}), 0.0)
            - (CASE WHEN g.careers THEN 10.0 ELSE 0.0 END)
            + least(g.opens + g.clicks, 15.0)
            + least(g.ebooks, 20.0)
            + coalesce(15.0 * power(0.5, ({as_of} - g.webinar_last) / {hl[60]}), 0.0)
            - (CASE WHEN g.unsubscribed THEN 20.0 ELSE 0.0 END)
            + (CASE WHEN g.views_30d >= 8 THEN 10.0 ELSE 0.0 END)
            + (CASE WHEN g.pricing_7d >= 3 THEN 10.0 ELSE 0.0 END)
        END AS engagement
    FROM {leads} AS l
    LEFT JOIN {accounts} AS a ON a.id = l.account_id
    LEFT JOIN agg AS g ON g.lead_id = l.id
)
SELECT
    lead_id,
    least(greatest(fit, 0), 80) * 1.25 AS fit_score,
    least(greatest(engagement, 0), 60) * (100.0 / 60.0) AS engagement_score,
    least(greatest(fit, 0), 80) * 1.25 * 0.4 + least(greatest(engagement, 0), 60) * (100.0 / 60.0) * 0.6 AS score
FROM points
"""


def fit_points(attributes: str | None, email_domain: str | None, account: dict[str, Any] | None) -> float:
    """The eight fit rules of bench/model.yaml for one lead (plain Python)."""
    attrs = json.loads(attributes) if attributes else {}
    title = attrs.get("job_title")
    title_l = title.lower() if isinstance(title, str) else None
    seniority = attrs.get("seniority")
    country = attrs.get("country")
    domain = (email_domain or "").lower()
    acc_attrs = account["attributes"] if account else {}
    employees = acc_attrs.get("employees")
    industry = acc_attrs.get("industry")
    fit = 0.0
    if title_l is not None and re.search("market|growth|demand gen", title_l):
        fit += 15
    if (isinstance(seniority, str) and seniority.lower() in {"director", "vp", "c-level"}) or (
        title_l is not None and "head of" in title_l
    ):
        fit += 10
    if isinstance(employees, int | float) and not isinstance(employees, bool) and 50 <= employees <= 1000:
        fit += 20
    if isinstance(industry, str) and industry.lower() in {"software", "saas", "fintech"}:
        fit += 10
    if isinstance(country, str) and country.lower() in NORDICS_DACH:
        fit += 5
    if account and (account["domain"] or "").lower() in TARGETS:
        fit += 20
    if domain in FREE_MAIL:
        fit -= 15
    if domain in COMPETITORS:
        fit -= 50
    return fit


class Engagement:
    """Per-lead accumulators of the twelve engagement rules, fed one event at a time (plain Python)."""

    __slots__ = (
        "blog",
        "careers",
        "clicks",
        "ebooks",
        "opens",
        "pricing_7d",
        "pricing_last",
        "product",
        "story_last",
        "unsubscribed",
        "views_30d",
        "webinar_last",
    )  # fmt: skip

    def __init__(self) -> None:
        self.blog = self.product = self.opens = self.clicks = self.ebooks = 0.0
        self.pricing_last = self.story_last = self.webinar_last = None
        self.careers = self.unsubscribed = False
        self.views_30d = self.pricing_7d = 0

    def add(
        self, as_of: int, ts: int, type_: str, name: str | None, path: str | None, properties: str
    ) -> None:
        age = float(as_of - ts)
        if type_ == "page":
            p = (path or "").lower()
            if p.startswith("/blog/"):
                self.blog += 0.5 ** (age / (30 * D))
            if age < 90 * D and p.startswith("/product/"):
                self.product += 3.0 * 0.5 ** (age / (45 * D))
            if p.startswith("/pricing"):
                self.pricing_last = ts if self.pricing_last is None else max(self.pricing_last, ts)
                if age < 7 * D:
                    self.pricing_7d += 1
            if p.startswith("/customers/"):
                self.story_last = ts if self.story_last is None else max(self.story_last, ts)
            if age < 60 * D and p.startswith("/careers"):
                self.careers = True
            if age < 30 * D:
                self.views_30d += 1
        elif type_ == "track":
            if name == "Email Opened":
                self.opens += 0.5 ** (age / (45 * D))
            elif name == "Email Clicked":
                self.clicks += 3.0 * 0.5 ** (age / (45 * D))
            elif name == "Ebook Downloaded":
                self.ebooks += 10.0 * 0.5 ** (age / (45 * D))
            elif name == "Webinar Attended":
                minutes = json.loads(properties).get("minutes")
                if isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes >= 20:
                    self.webinar_last = ts if self.webinar_last is None else max(self.webinar_last, ts)
            elif name == "Unsubscribed":
                self.unsubscribed = True

    def points(self, as_of: int) -> float:
        def once(points: float, last: int | None, half_life_days: float) -> float:
            return 0.0 if last is None else points * 0.5 ** ((as_of - last) / (half_life_days * D))

        return (
            min(self.blog, 10.0)
            + min(self.product, 15.0)
            + once(10.0, self.pricing_last, 14)
            + once(5.0, self.story_last, 45)
            - (10.0 if self.careers else 0.0)
            + min(self.opens + self.clicks, 15.0)
            + min(self.ebooks, 20.0)
            + once(15.0, self.webinar_last, 60)
            - (20.0 if self.unsubscribed else 0.0)
            + (10.0 if self.views_30d >= 8 else 0.0)
            + (10.0 if self.pricing_7d >= 3 else 0.0)
        )


def scores(fit: float, engagement: float) -> tuple[float, float, float]:
    fit_score = min(max(fit, 0.0), 80.0) * 1.25
    engagement_score = min(max(engagement, 0.0), 60.0) * (100.0 / 60.0)
    return fit_score, engagement_score, fit_score * 0.4 + engagement_score * 0.6


def python_loop(
    as_of: int,
    events: Iterable[tuple[str, int, str, str | None, str | None, str]],
    identities: Iterable[tuple[str, int]],
    leads: Iterable[tuple[int, str | None, str | None, int | None]],
    accounts: Iterable[tuple[int, str | None, str | None]],
) -> dict[int, tuple[float, float, float]]:
    """The model as a plain loop: events (person_key, ts, type, name, path, properties) streamed once."""
    owner = dict(identities)
    acc = {i: {"domain": d, "attributes": json.loads(a) if a else {}} for i, d, a in accounts}
    state: dict[int, Engagement] = defaultdict(Engagement)
    for person_key, ts, type_, name, path, properties in events:
        lead = owner.get(person_key)
        if lead is None or ts > as_of or type_ not in ("page", "track"):
            continue
        state[lead].add(as_of, ts, type_, name, path, properties)
    out = {}
    for lead_id, attributes, email_domain, account_id in leads:
        fit = fit_points(attributes, email_domain, acc.get(account_id) if account_id is not None else None)
        engagement = state[lead_id].points(as_of) if lead_id in state else 0.0
        out[lead_id] = scores(fit, engagement)
    return out


def pandas_scores(as_of: int, events: Any, identities: Any, leads: Any, accounts: Any) -> Any:
    """The model with pandas: one vectorised mask per rule, groupby per lead (fit rules per lead row)."""
    import numpy as np
    import pandas as pd

    ev = events.merge(identities, left_on="person_key", right_on="key")
    ev = ev[(ev.ts <= as_of) & ev.type.isin(["page", "track"])]
    age = (as_of - ev.ts).astype(float)
    path = ev.path.fillna("").str.lower()
    page, track = ev.type == "page", ev.type == "track"
    lead = ev.lead_id

    def total(mask: Any, values: Any) -> Any:
        return values[mask].groupby(lead[mask]).sum()

    def last(mask: Any) -> Any:
        return ev.ts[mask].groupby(lead[mask]).max()

    def count(mask: Any) -> Any:
        return mask.groupby(lead).sum()

    decay = {h: 0.5 ** (age / (h * D)) for h in (30, 45)}
    minutes = ev.properties.where(track & (ev.name == "Webinar Attended")).map(
        lambda p: json.loads(p).get("minutes") if isinstance(p, str) else None
    )
    numeric = minutes.map(lambda m: isinstance(m, int | float) and not isinstance(m, bool) and m >= 20)
    per_lead = pd.DataFrame(
        {
            "blog": total(page & path.str.startswith("/blog/"), decay[30]),
            "product": total(page & (age < 90 * D) & path.str.startswith("/product/"), 3.0 * decay[45]),
            "pricing_last": last(page & path.str.startswith("/pricing")),
            "story_last": last(page & path.str.startswith("/customers/")),
            "careers": count(page & (age < 60 * D) & path.str.startswith("/careers")),
            "opens": total(track & (ev.name == "Email Opened"), decay[45]),
            "clicks": total(track & (ev.name == "Email Clicked"), 3.0 * decay[45]),
            "ebooks": total(track & (ev.name == "Ebook Downloaded"), 10.0 * decay[45]),
            "webinar_last": last(track & (ev.name == "Webinar Attended") & numeric.astype(bool)),
            "unsubscribed": count(track & (ev.name == "Unsubscribed")),
            "views_30d": count(page & (age < 30 * D)),
            "pricing_7d": count(page & (age < 7 * D) & path.str.startswith("/pricing")),
        }
    ).reindex(leads.id)
    g = per_lead.fillna({c: 0 for c in per_lead.columns if not c.endswith("_last")})

    def once(points: float, last_ts: Any, days: float) -> Any:
        return (points * 0.5 ** ((as_of - last_ts) / (days * D))).fillna(0.0)

    engagement = (
        np.minimum(g.blog, 10.0)
        + np.minimum(g["product"], 15.0)
        + once(10.0, g.pricing_last, 14)
        + once(5.0, g.story_last, 45)
        - 10.0 * (g.careers > 0)
        + np.minimum(g.opens + g.clicks, 15.0)
        + np.minimum(g.ebooks, 20.0)
        + once(15.0, g.webinar_last, 60)
        - 20.0 * (g.unsubscribed > 0)
        + 10.0 * (g.views_30d >= 8)
        + 10.0 * (g.pricing_7d >= 3)
    )
    acc = accounts.set_index("id")
    acc_rows = leads.account_id.map(lambda i: None if pd.isna(i) else i)
    fit = [
        fit_points(
            a,
            d,
            None
            if i is None or i not in acc.index
            else {"domain": acc.at[i, "domain"], "attributes": json.loads(acc.at[i, "attributes"] or "{}")},
        )
        for a, d, i in zip(leads.attributes, leads.email_domain, acc_rows, strict=True)
    ]
    fit_s = np.minimum(np.maximum(np.array(fit), 0.0), 80.0) * 1.25
    eng_s = np.minimum(np.maximum(engagement.to_numpy(), 0.0), 60.0) * (100.0 / 60.0)
    return pd.DataFrame({"lead_id": leads.id, "fit_score": fit_s, "engagement_score": eng_s,
                         "score": fit_s * 0.4 + eng_s * 0.6})  # fmt: skip


__all__ = ["duckdb_query", "pandas_scores", "python_loop"]
