"""Names of the columns a compiled model returns: one row per (lead, as_of), wide.

lead_id, as_of
fit_raw, fit_floor_adj, fit_clamp_adj, fit_points, fit_score
engagement_raw, engagement_floor_adj, engagement_clamp_adj, engagement_points, engagement_score
score, grade, level, band
f__<rule>                       fit rule points (0 or the rule's points)
n__<rule>, raw__<rule>, val__<rule>   matches counted, points before the rule cap, after it
last__<rule>                    most recent matching event time ('once' and 'recency' rules)
d__<rule>                       distinct days, sessions, people or values counted ('threshold' with count)
of__<rule>                      the number a 'threshold' rule's share is of (e.g. account.seats)
recent__<rule>, before__<rule>  the count of the last window and of the one before ('ratio' rules)

Inside the event stage of a rule with ``exclude`` (``query.with_exclusions``), per event: x__<rule> 1 when
the rule does not count it as of the row's as-of, from bh__ (the earliest match within the span after the
event whose bn__ is above more_than; once per person and time, ``query.burst_times``, from bm__: the event
is a burst kind's match, and bn__: that kind's matches in the span before it) and sent__ (the latest send
with the same value); these are shared by the rules with the same definition and named after the first
of them.
gsum__<group>, gval__<group>    group total before and after the group cap

The per-event form (``contributions``) repeats the row once per counted (rule, event) and adds
ev_rule, ev_message_id, ev_ts, ev_type, ev_name, ev_path, ev_url and the event's raw-point shares of the
rule line, the group cap line and the engagement floor and clamp lines (ev_points, ev_group_cap, ev_floor,
ev_clamp).
"""

from __future__ import annotations

TRACKING = "tracking_allowed"  # 1 when the lead's behaviour may be scored (consent), else 0
SUMMARY = (
    "fit_raw",
    "fit_floor_adj",
    "fit_clamp_adj",
    "fit_points",
    "fit_score",
    "engagement_raw",
    "engagement_floor_adj",
    "engagement_clamp_adj",
    "engagement_points",
    "engagement_score",
    "score",
    "grade",
    "level",
    "band",
)


def fit_col(rule_id: str) -> str:
    return f"f__{rule_id}"


def count_col(rule_id: str) -> str:
    return f"n__{rule_id}"


def raw_col(rule_id: str) -> str:
    return f"raw__{rule_id}"


def value_col(rule_id: str) -> str:
    return f"val__{rule_id}"


def last_col(rule_id: str) -> str:
    return f"last__{rule_id}"


def distinct_col(rule_id: str) -> str:
    return f"d__{rule_id}"


def recent_col(rule_id: str) -> str:
    return f"recent__{rule_id}"


def before_col(rule_id: str) -> str:
    return f"before__{rule_id}"


def share_col(rule_id: str) -> str:
    return f"of__{rule_id}"


def excluded_col(rule_id: str) -> str:
    return f"x__{rule_id}"


def burst_col(rule_id: str) -> str:
    return f"bn__{rule_id}"


def burst_match_col(rule_id: str) -> str:
    return f"bm__{rule_id}"


def burst_time_col(rule_id: str) -> str:
    return f"bh__{rule_id}"


def sent_col(rule_id: str) -> str:
    return f"sent__{rule_id}"


def group_sum_col(group_id: str) -> str:
    return f"gsum__{group_id}"


def group_value_col(group_id: str) -> str:
    return f"gval__{group_id}"


# The per-event form (``contributions.compile_contributions``) adds, per (rule, counted event) row:
EVENT_RULE = "ev_rule"  # the rule's position in model.engagement
EVENT_COLUMNS = ("ev_message_id", "ev_ts", "ev_type", "ev_name", "ev_path", "ev_url")
EVENT_PARTS = ("ev_points", "ev_group_cap", "ev_floor", "ev_clamp")  # raw points, one per ledger line
