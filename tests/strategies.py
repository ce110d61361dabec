"""Hypothesis strategies: small random scoring models, and Segment message streams for a few people.

Models mix fit rules (text, numeric, list and existence operators) with each / once / threshold (and,
unless every point must be positive, recency / ratio) engagement rules that have random windows,
half-lives, caps, groups, distinct counts, account scope and exclusions (machine events, bursts). Message streams identify up to
three users (with consistent traits and an anonymous id each), then page views and track events from
those users, their anonymous ids and strangers, spread over 60 days before ``AS_OF`` and a little after;
some users join the account of their e-mail domain (a group message). Track events may carry a property
``v`` from ``HOSTILE_VALUES``, which rules test with ``VALUE_CONDITIONS``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from leadscore.ingest.segment import Message, normalise
from leadscore.model import ScoringModel

DAY_MS = 86_400_000
AS_OF = 1_750_000_000_000
RECEIVED = AS_OF + 10 * DAY_MS  # every message arrives after it happened (no future-clock rejections)
USERS = ("u1", "u2", "u3")
PATHS = ("/", "/blog/a", "/blog/b", "/pricing", "/product/x", "/careers", "/Customers/Acme")
TRACK_NAMES = ("Email Opened", "Email Clicked", "Ebook Downloaded", "Webinar Attended")
HALF_LIVES = ("12h", "2d", "7d", "30d")

# property values a marketer's conditions meet in real traffic, hostile to one engine or another: case folding
# beyond ASCII (ß, final sigma, long s, title case, full width), NFC against NFD, control characters,
# texts that some parser takes for a number, numbers at a double's edges, booleans, null, objects.
# Left out: İ and the Kelvin sign against ASCII rule values (SQLite's documented exception) and numbers
# spelled with an exponent compared as text (spelled differently per engine, docs/model-language.md).
HOSTILE_VALUES: tuple[Any, ...] = (
    "Straße", "STRASSE", "ΟΔΟΣ", "οδος", "Café", "Cafe\u0301", "ＡＢＣ", "abc", "abc ", "😀 abc", "a\x01b",
    "a\nb", "a\rb", "ǅ", "ſ", "µ", "NaN", "Infinity", "+INF", " 10", "1e3", "0x10", "1_000", "١٠", "10", 10,
    -0.0, 0.30000000000000004, 1234.5, 2**63 - 1, -(2**63), 9007199254740993, True, False, None, {"a": 1},
    [10], "/Blog/%C3%A9?x=1#f", "/a_b", "/axb", "100%", "a\\b", "O'Brien", "x" * 1999,
)  # fmt: skip
VALUE_CONDITIONS: tuple[dict[str, Any], ...] = (
    {"equals": "straße"}, {"contains": "ss"}, {"equals": "οδοσ"}, {"prefix": "caf"}, {"equals": "ａｂｃ"},
    {"contains": "abc"}, {"regex": "^ab"}, {"regex": "σ$"}, {"regex": "s"}, {"regex": "a.b"}, {"regex": "[a-c]$"},
    {"in": ["abc", "ǆ", 10]}, {"gte": 10}, {"between": [-1, 1]}, {"lt": 0}, {"equals": 0}, {"equals": True},
    {"equals": "10"}, {"glob": "*c"}, {"exists": True}, {"contains": "%c3"}, {"equals": "0.30000000000000004"},
    {"prefix": "/a_"}, {"contains": "%"}, {"equals": "a\\b"}, {"contains": "'"}, {"glob": "/a?b"},
)  # fmt: skip

_points = st.sampled_from([-15, -5, -1, 0.5, 1, 2, 3, 5, 10, 20])
_positive_points = st.sampled_from([0.5, 1, 2, 3, 5, 10, 20])


@st.composite
def fit_rules(draw: st.DrawFn, index: int, positive: bool) -> dict[str, Any]:
    when = draw(
        st.sampled_from(
            [
                {"attribute": "job_title", "contains": "market"},
                {"attribute": "job_title", "prefix": "head"},
                {"attribute": "job_title", "regex": "cto|vp"},
                {"attribute": "employees", "gte": 50},
                {"attribute": "employees", "between": [10, 500]},
                {"attribute": "country", "in": ["SE", "DK"]},
                {"attribute": "country", "missing": True},
                {"attribute": "email_domain", "in_list": "free_mail"},
                {"any": [{"attribute": "country", "equals": "SE"}, {"attribute": "employees", "lt": 20}]},
                {"not": {"attribute": "job_title", "exists": True}},
            ]
        )
    )
    return {
        "id": f"fit_{index}",
        "name": f"Fit {index}",
        "when": when,
        "points": draw(_positive_points if positive else _points),
    }


@st.composite
def event_rules(draw: st.DrawFn, index: int, positive: bool, groups: list[str]) -> dict[str, Any]:
    # recency and ratio points may rise as time passes (a later step, an emptier window before): they are
    # left out where every point must be positive, for the properties about time only lowering scores
    kind = draw(st.sampled_from(["each", "once", "threshold", *([] if positive else ["recency", "ratio"])]))
    rule: dict[str, Any] = {"id": f"eng_{index}", "name": f"Engagement {index}", "kind": kind}
    if draw(st.booleans()):
        rule["event"] = {"type": "page"}
        prefix = draw(st.sampled_from([None, "/blog/", "/pricing", "/customers/", "/"]))
        if prefix:
            rule["where"] = {"property": "path", "prefix": prefix}
    else:
        rule["event"] = {"type": "track", "name": draw(st.sampled_from(TRACK_NAMES))}
        if draw(st.integers(0, 2)) == 0:
            rule["where"] = {"property": "v", **draw(st.sampled_from(VALUE_CONDITIONS))}
    rule["points"] = draw(_positive_points if positive else _points)
    window = draw(st.sampled_from([None, "1d", "7d", "30d"]))
    if window:
        rule["window"] = window
    if draw(st.integers(0, 3)) == 0:
        rule["exclude"] = draw(
            st.sampled_from(
                [
                    {"burst": {"more_than": 2, "within": "2d"}},
                    {"machine": {"after": "Email Opened", "same": "email_id", "within": "3d"}},
                ]
            )
        )
    if kind in ("threshold", "ratio"):
        if draw(st.booleans()):
            rule["scope"] = "account"
        distinct = draw(st.sampled_from([None, "day", {"property": "email_id"}, "person"]))
        if distinct == "person" and rule.get("scope") != "account":
            distinct = None
        if distinct is not None:
            rule["count"] = {"distinct": distinct}
    if kind == "threshold":
        rule["at_least"] = draw(st.integers(1, 4))
        rule["within"] = draw(st.sampled_from(["2d", "14d", "45d"]))
    elif kind == "ratio":
        rule["within"] = draw(st.sampled_from(["3d", "10d"]))
        bound = draw(st.sampled_from([("at_least", 1), ("at_least", 1.5), ("at_most", 0.5), ("at_most", 1)]))
        rule[bound[0]] = bound[1]
    elif kind == "recency":
        del rule["points"]
        rule["steps"] = draw(
            st.sampled_from(
                [
                    [{"within": "1d", "points": 10}, {"within": "7d", "points": 3}],
                    [{"within": "20d", "points": draw(_points)}],
                ]
            )
        )
    else:
        half_life = draw(st.sampled_from([None, "none", *HALF_LIVES]))
        if half_life:
            rule["half_life"] = half_life
    if kind == "each" and draw(st.booleans()):
        rule["cap"] = draw(st.sampled_from([1, 4, 12.5]))
    if groups and draw(st.booleans()):
        rule["group"] = draw(st.sampled_from(groups))
    return rule


@st.composite
def model_dicts(draw: st.DrawFn, positive: bool = False) -> dict[str, Any]:
    """A model as the YAML document would hold it; ``positive`` makes every rule's points positive."""
    groups = [f"grp_{i}" for i in range(draw(st.integers(0, 2)))]
    n_fit = draw(st.integers(0, 3))
    n_eng = draw(st.integers(1, 5))
    data: dict[str, Any] = {
        "model": "prop",
        "lists": {"free_mail": {"values": ["gmail.com", "yahoo.com"]}},
        "fit": [draw(fit_rules(i, positive)) for i in range(n_fit)],
        "engagement": [draw(event_rules(i, positive, groups)) for i in range(n_eng)],
        "groups": [{"id": g, "name": g, "cap": draw(st.sampled_from([2, 6, 15]))} for g in groups],
        "scale": {
            "fit_max": draw(st.sampled_from([10, 40, 100])),
            "engagement_max": draw(st.sampled_from([5, 30, 100])),
            "weights": {
                "fit": draw(st.sampled_from([0, 0.3, 1])),
                "engagement": draw(st.sampled_from([0.7, 1])),
            },
        },
    }
    default = draw(st.sampled_from([None, *HALF_LIVES]))
    if default:
        data["defaults"] = {"half_life": default}
    return data


def models(positive: bool = False) -> st.SearchStrategy[ScoringModel]:
    return model_dicts(positive).map(ScoringModel.model_validate)


def _traits(draw: st.DrawFn, user: str) -> dict[str, Any]:
    traits: dict[str, Any] = {
        "email": f"{user}@{draw(st.sampled_from(['acme.com', 'gmail.com', 'example.se']))}"
    }
    if draw(st.booleans()):
        traits["job_title"] = draw(st.sampled_from(["Head of Marketing", "CTO", "Engineer", "VP Sales"]))
    if draw(st.booleans()):
        traits["employees"] = draw(st.sampled_from([5, 15, 60, 400, 2000]))
    if draw(st.booleans()):
        traits["country"] = draw(st.sampled_from(["SE", "DK", "US"]))
    return traits


@st.composite
def message_streams(draw: st.DrawFn, max_events: int = 25, future: bool = True) -> list[Message]:
    """Identify messages (one per user, so traits never conflict) followed by events; all normalised.

    Events may come from a user, from the user's anonymous id (stitched by the identify message) or
    from a stranger. With ``future``, some events happen after AS_OF (they must not count).
    """
    users = draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=3, unique=True))
    raw: list[dict[str, Any]] = []
    for user in users:
        raw.append(
            {
                "type": "identify",
                "userId": user,
                "anonymousId": f"anon-{user}",
                "traits": _traits(draw, user),
                "timestamp": AS_OF - draw(st.integers(0, 60)) * DAY_MS,
            }
        )
    for user in users:
        if draw(st.integers(0, 2)) == 0:
            domain = str(raw[users.index(user)]["traits"]["email"]).split("@")[1]
            raw.append(
                {
                    "type": "group",
                    "userId": user,
                    "groupId": domain,
                    "traits": {"name": domain, "domain": domain},
                    "timestamp": AS_OF - 61 * DAY_MS,
                }
            )
    earliest = -2 * DAY_MS if future else 0
    for _ in range(draw(st.integers(0, max_events))):
        who = draw(st.sampled_from([*users, "anon", "stranger"]))
        message: dict[str, Any] = {"timestamp": AS_OF - draw(st.integers(earliest, 60 * DAY_MS))}
        if who == "anon":
            message["anonymousId"] = f"anon-{draw(st.sampled_from(users))}"
        elif who == "stranger":
            message["anonymousId"] = "stranger"
        else:
            message["userId"] = who
        if draw(st.booleans()):
            message["type"] = "page"
            message["properties"] = {"path": draw(st.sampled_from(PATHS))}
        else:
            message["type"] = "track"
            message["event"] = draw(st.sampled_from(TRACK_NAMES))
            properties: dict[str, Any] = {}
            if draw(st.booleans()):
                properties["email_id"] = draw(st.sampled_from(["e1", "E1", "e2"]))
            if draw(st.booleans()):
                properties["v"] = draw(st.sampled_from(HOSTILE_VALUES))
            if properties:
                message["properties"] = properties
        raw.append(message)
    for i, message in enumerate(raw):
        message["messageId"] = f"m{i}"
    return [normalise(m, received_ms=RECEIVED) for m in raw]
