"""bench/model.yaml written by hand in SQL, once per engine, the way one would tune it for that engine.

Each query takes ``:as_of`` (epoch ms) and returns ``lead_id, fit_score, engagement_score, score`` for
every lead. Compared with the compiled query it may: compute an event's age once, sum decay weights and
multiply by the points after the sum, test windows as ``age < window``, use engine idioms (SQLite's
case-insensitive LIKE and scalar min/max; PostgreSQL's FILTER, LEAST/GREATEST, ``~*``), and skip the
explanation columns. It must return the same scores (the bench checks to 1e-9).
"""

from __future__ import annotations

# Half-lives and windows in ms.
D = 86_400_000
_CONSTANTS = {
    "HL14": 14 * D,
    "HL30": 30 * D,
    "HL45": 45 * D,
    "HL60": 60 * D,
    "W7": 7 * D,
    "W30": 30 * D,
    "W60": 60 * D,
    "W90": 90 * D,
}


def _fill(sql: str, double: str) -> str:
    """Put the constants in; half-lives are written as doubles (``double`` formats one)."""
    for key, value in _CONSTANTS.items():
        sql = sql.replace(f"{{{key}}}", double.format(value) if key.startswith("HL") else str(value))
    return sql


SQLITE = _fill(
    """
WITH ev AS (
    SELECT i.lead_id, e.ts, e.type, e.name, e.path, e.properties, :as_of - e.ts AS age
    FROM identities AS i
    JOIN events AS e ON e.person_key = i.key
    WHERE e.ts <= :as_of AND e.type IN ('page', 'track')
),
agg AS (
    SELECT
        lead_id,
        total(CASE WHEN type = 'page' AND path LIKE '/blog/%' THEN power(0.5, age / {HL30}) END) AS blog,
        3.0 * total(CASE WHEN type = 'page' AND age < {W90} AND path LIKE '/product/%'
                         THEN power(0.5, age / {HL45}) END) AS product,
        max(CASE WHEN type = 'page' AND path LIKE '/pricing%' THEN ts END) AS pricing_last,
        max(CASE WHEN type = 'page' AND path LIKE '/customers/%' THEN ts END) AS story_last,
        max(CASE WHEN type = 'page' AND age < {W60} AND path LIKE '/careers%' THEN 1 ELSE 0 END) AS careers,
        total(CASE WHEN type = 'track' AND name = 'Email Opened' THEN power(0.5, age / {HL45}) END) AS opens,
        3.0 * total(CASE WHEN type = 'track' AND name = 'Email Clicked' THEN power(0.5, age / {HL45}) END) AS clicks,
        10.0 * total(CASE WHEN type = 'track' AND name = 'Ebook Downloaded' THEN power(0.5, age / {HL45}) END)
            AS ebooks,
        max(CASE WHEN type = 'track' AND name = 'Webinar Attended'
                      AND json_type(properties, '$.minutes') IN ('integer', 'real')
                      AND json_extract(properties, '$.minutes') >= 20 THEN ts END) AS webinar_last,
        max(CASE WHEN type = 'track' AND name = 'Unsubscribed' THEN 1 ELSE 0 END) AS unsubscribed,
        sum(type = 'page' AND age < {W30}) AS views_30d,
        sum(type = 'page' AND age < {W7} AND path LIKE '/pricing%') AS pricing_7d
    FROM ev
    GROUP BY lead_id
),
points AS (
    SELECT
        l.id AS lead_id,
        (CASE WHEN json_extract(l.attributes, '$.job_title') LIKE '%market%'
                OR json_extract(l.attributes, '$.job_title') LIKE '%growth%'
                OR json_extract(l.attributes, '$.job_title') LIKE '%demand gen%' THEN 15 ELSE 0 END)
        + (CASE WHEN lower(json_extract(l.attributes, '$.seniority')) IN ('director', 'vp', 'c-level')
                  OR json_extract(l.attributes, '$.job_title') LIKE '%head of%' THEN 10 ELSE 0 END)
        + (CASE WHEN json_type(a.attributes, '$.employees') IN ('integer', 'real')
                 AND json_extract(a.attributes, '$.employees') BETWEEN 50 AND 1000 THEN 20 ELSE 0 END)
        + (CASE WHEN lower(json_extract(a.attributes, '$.industry')) IN ('software', 'saas', 'fintech')
                THEN 10 ELSE 0 END)
        + (CASE WHEN lower(json_extract(l.attributes, '$.country')) IN ('se', 'dk', 'no', 'fi', 'de', 'at', 'ch')
                THEN 5 ELSE 0 END)
        + (CASE WHEN lower(a.domain) IN ('acme-0.com', 'acme-7.com', 'acme-13.com', 'acme-42.com', 'acme-99.com',
                                         'acme-123.com') THEN 20 ELSE 0 END)
        + (CASE WHEN lower(l.email_domain) IN ('gmail.com', 'yahoo.com', 'hotmail.com', 'outlook.com', 'icloud.com')
                THEN -15 ELSE 0 END)
        + (CASE WHEN lower(l.email_domain) IN ('rivalscore.io', 'leadly.com') THEN -50 ELSE 0 END) AS fit,
        -- no row in agg: no events; PostgreSQL's LEAST would otherwise skip the NULLs
        CASE WHEN g.lead_id IS NULL THEN 0.0 ELSE
            min(g.blog, 10.0)
            + min(g.product, 15.0)
            + coalesce(10.0 * power(0.5, (:as_of - g.pricing_last) / {HL14}), 0.0)
            + coalesce(5.0 * power(0.5, (:as_of - g.story_last) / {HL45}), 0.0)
            - 10.0 * g.careers
            + min(g.opens + g.clicks, 15.0)
            + min(g.ebooks, 20.0)
            + coalesce(15.0 * power(0.5, (:as_of - g.webinar_last) / {HL60}), 0.0)
            - 20.0 * g.unsubscribed
            + (CASE WHEN g.views_30d >= 8 THEN 10.0 ELSE 0.0 END)
            + (CASE WHEN g.pricing_7d >= 3 THEN 10.0 ELSE 0.0 END)
        END AS engagement
    FROM leads AS l
    LEFT JOIN accounts AS a ON a.id = l.account_id
    LEFT JOIN agg AS g ON g.lead_id = l.id
)
SELECT
    lead_id,
    min(max(fit, 0.0), 80.0) * 1.25 AS fit_score,
    min(max(engagement, 0.0), 60.0) * (100.0 / 60.0) AS engagement_score,
    min(max(fit, 0.0), 80.0) * 1.25 * 0.4 + min(max(engagement, 0.0), 60.0) * (100.0 / 60.0) * 0.6 AS score
FROM points
""",
    "{}.0",
)

POSTGRESQL = _fill(
    """
WITH ev AS (
    SELECT i.lead_id, e.ts, e.type, e.name, lower(e.path) AS path, e.properties,
           CAST(:as_of - e.ts AS double precision) AS age
    FROM identities AS i
    JOIN events AS e ON e.person_key = i.key
    WHERE e.ts <= :as_of AND e.type IN ('page', 'track')
),
agg AS (
    SELECT
        lead_id,
        coalesce(sum(power(0.5, age / {HL30})) FILTER (WHERE type = 'page' AND path LIKE '/blog/%'), 0) AS blog,
        3.0 * coalesce(sum(power(0.5, age / {HL45}))
                       FILTER (WHERE type = 'page' AND age < {W90} AND path LIKE '/product/%'), 0) AS product,
        max(ts) FILTER (WHERE type = 'page' AND path LIKE '/pricing%') AS pricing_last,
        max(ts) FILTER (WHERE type = 'page' AND path LIKE '/customers/%') AS story_last,
        bool_or(type = 'page' AND age < {W60} AND path LIKE '/careers%') AS careers,
        coalesce(sum(power(0.5, age / {HL45})) FILTER (WHERE type = 'track' AND name = 'Email Opened'), 0) AS opens,
        3.0 * coalesce(sum(power(0.5, age / {HL45}))
                       FILTER (WHERE type = 'track' AND name = 'Email Clicked'), 0) AS clicks,
        10.0 * coalesce(sum(power(0.5, age / {HL45}))
                        FILTER (WHERE type = 'track' AND name = 'Ebook Downloaded'), 0) AS ebooks,
        max(ts) FILTER (WHERE type = 'track' AND name = 'Webinar Attended'
                          AND jsonb_typeof(properties -> 'minutes') = 'number'
                          AND (properties ->> 'minutes')::double precision >= 20) AS webinar_last,
        bool_or(type = 'track' AND name = 'Unsubscribed') AS unsubscribed,
        count(*) FILTER (WHERE type = 'page' AND age < {W30}) AS views_30d,
        count(*) FILTER (WHERE type = 'page' AND age < {W7} AND path LIKE '/pricing%') AS pricing_7d
    FROM ev
    GROUP BY lead_id
),
points AS (
    SELECT
        l.id AS lead_id,
        (CASE WHEN l.attributes ->> 'job_title' ~* 'market|growth|demand gen' THEN 15 ELSE 0 END)
        + (CASE WHEN lower(l.attributes ->> 'seniority') IN ('director', 'vp', 'c-level')
                  OR l.attributes ->> 'job_title' ILIKE '%head of%' THEN 10 ELSE 0 END)
        + (CASE WHEN jsonb_typeof(a.attributes -> 'employees') = 'number'
                 AND (a.attributes ->> 'employees')::double precision BETWEEN 50 AND 1000 THEN 20 ELSE 0 END)
        + (CASE WHEN lower(a.attributes ->> 'industry') IN ('software', 'saas', 'fintech') THEN 10 ELSE 0 END)
        + (CASE WHEN lower(l.attributes ->> 'country') IN ('se', 'dk', 'no', 'fi', 'de', 'at', 'ch')
                THEN 5 ELSE 0 END)
        + (CASE WHEN lower(a.domain) IN ('acme-0.com', 'acme-7.com', 'acme-13.com', 'acme-42.com', 'acme-99.com',
                                         'acme-123.com') THEN 20 ELSE 0 END)
        + (CASE WHEN lower(l.email_domain) IN ('gmail.com', 'yahoo.com', 'hotmail.com', 'outlook.com', 'icloud.com')
                THEN -15 ELSE 0 END)
        + (CASE WHEN lower(l.email_domain) IN ('rivalscore.io', 'leadly.com') THEN -50 ELSE 0 END) AS fit,
        -- no row in agg: no events; PostgreSQL's LEAST would otherwise skip the NULLs
        CASE WHEN g.lead_id IS NULL THEN 0.0 ELSE
            least(g.blog, 10.0)
            + least(g.product, 15.0)
            + coalesce(10.0 * power(0.5, (:as_of - g.pricing_last) / {HL14}), 0.0)
            + coalesce(5.0 * power(0.5, (:as_of - g.story_last) / {HL45}), 0.0)
            - (CASE WHEN g.careers THEN 10.0 ELSE 0.0 END)
            + least(g.opens + g.clicks, 15.0)
            + least(g.ebooks, 20.0)
            + coalesce(15.0 * power(0.5, (:as_of - g.webinar_last) / {HL60}), 0.0)
            - (CASE WHEN g.unsubscribed THEN 20.0 ELSE 0.0 END)
            + (CASE WHEN g.views_30d >= 8 THEN 10.0 ELSE 0.0 END)
            + (CASE WHEN g.pricing_7d >= 3 THEN 10.0 ELSE 0.0 END)
        END AS engagement
    FROM leads AS l
    LEFT JOIN accounts AS a ON a.id = l.account_id
    LEFT JOIN agg AS g ON g.lead_id = l.id
)
SELECT
    lead_id,
    least(greatest(fit, 0), 80) * 1.25::double precision AS fit_score,
    least(greatest(engagement, 0), 60) * (100.0 / 60.0)::double precision AS engagement_score,
    least(greatest(fit, 0), 80) * 1.25::double precision * 0.4::double precision
      + least(greatest(engagement, 0), 60) * (100.0 / 60.0)::double precision * 0.6::double precision AS score
FROM points
""",
    # a bare 1209600000.0 is NUMERIC in PostgreSQL, and power() on NUMERIC is slow
    "CAST({}.0 AS double precision)",
)

QUERIES = {"sqlite": SQLITE, "postgresql": POSTGRESQL}


def query(dialect: str) -> str:
    """The hand-written scoring query for an engine (``sqlite`` or ``postgresql``)."""
    return QUERIES[dialect]
