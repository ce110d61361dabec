"""Which part of the lifecycle is a named score's: the stages its team's reports count (the funnel, being
nurtured, the hand-off queue, time in stage), when gates name scores (docs/named-scores.md).

The lifecycle is one state machine; a gate may name the score it tests, so each team qualifies leads on its
own score (``mql_analytics`` entered when ``analytics ≥ 60``). A stage is **owned** by the scores whose
gates lead into it: every automatic transition into it whose gate tests a score (a score, grade, level,
band or ledger line) names one, the primary when it names none. A stage no gate tests a score for (the
initial stage, one entered on a sales decision or on inactivity) is owned by none: it is shared.

The view of score S:

- its stages: the shared ones and those S owns (alone or with other scores), in the lifecycle's order;
- a lead's entry into one of them counts for S when the stage is S's alone, or the lead entered a stage
  of S's alone before it, or it entered no stage of another score before it: the shared top of the
  funnel counts every lead, a shared stage after the teams' own stages counts the leads that came through
  S's (``with sales`` after ``mql_analytics`` is the analytics team's, after ``mql_core`` the core team's).

A score that owns no stage (the lifecycle names no gate on it) sees the whole lifecycle, every entry
counted: the view of a store of one score, or of a lifecycle that names no score, is what every report
counted before scores were named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Select, and_, select, true

from leadscore.model import Gate, Lifecycle
from leadscore.store.people import normalise_email
from leadscore.store.schema import stage_history
from leadscore.store.score_names import primary_score, resolve


def tests_a_score(gate: Gate) -> bool:
    """Whether a gate reads a score's values (so the stage it leads into belongs to that score)."""
    tested = (gate.score_at_least, gate.score_below, gate.grade_at_least, gate.level_at_least)
    return (
        gate.score is not None or any(v is not None for v in tested) or bool(gate.band_in or gate.rules_met)
    )


def owners(lifecycle: Lifecycle, primary: str) -> dict[str, frozenset[str]]:
    """Each stage's owning scores (empty: a shared stage)."""
    found: dict[str, set[str]] = {s.id: set() for s in lifecycle.stages}
    for t in lifecycle.transitions:
        if t.trigger == "score" and tests_a_score(t.when):
            found[t.to].add(t.when.score or primary)
    return {stage: frozenset(names) for stage, names in found.items()}


def unpublished_scores(lifecycle: Lifecycle, published: set[str]) -> list[str]:
    """Warnings for the scores ``lifecycle`` names that no model is published as: a gate naming one never
    lets a lead in, an action never runs (a typo such as ``analytcs`` said nothing)."""
    return [
        f"{where} names the score {name!r}, which has no published model: it never holds until "
        f"`leadscore model publish FILE --score {name}` (scores: {', '.join(sorted(published))})"
        for where, name in lifecycle.named_scores()
        if name not in published
    ]


def desk_score(lifecycle: Lifecycle, email: str, primary: str) -> str | None:
    """The score whose hand-off queue the person with ``email`` works, when the desk names none: the one
    score owning every assignment stage their teams (as a seller or a manager) are routed leads in
    (``Assignment.teams_for``); None when it is the primary, or several, or they are in no team (the desk
    then shows the primary's queue). Ada of the analytics team opened a desk without her leads."""
    assignment = lifecycle.assignment
    if assignment is None:
        return None
    folded = normalise_email(email)
    teams = {
        t.id
        for t in lifecycle.teams
        if any(normalise_email(s.email) == folded for s in t.sellers)
        or (t.manager is not None and normalise_email(t.manager.email) == folded)
    }
    owned = owners(lifecycle, primary)
    found = {name for stage in assignment.stage_ids if teams & set(assignment.teams_for(stage))
             for name in owned.get(stage, frozenset())}  # fmt: skip
    if len(found) != 1 or found == {primary}:
        return None
    return found.pop()


@dataclass(frozen=True)
class ScoreView:
    """The stages score ``score``'s reports count, and which entries into them (module docstring)."""

    score: str
    stages: tuple[str, ...]  # the lifecycle's stages this score's reports show, in the lifecycle's order
    own: frozenset[str]  # stages owned by this score alone
    others: frozenset[str]  # stages owned by other scores only (never shown)

    @classmethod
    def of(cls, lifecycle: Lifecycle, score: str, primary: str) -> ScoreView:
        owned = owners(lifecycle, primary)
        own = frozenset(s for s, names in owned.items() if names == {score})
        if not any(score in names for names in owned.values()):
            return cls(score, tuple(s.id for s in lifecycle.stages), frozenset(), frozenset())
        others = frozenset(s for s, names in owned.items() if names and score not in names)
        return cls(score, tuple(s.id for s in lifecycle.stages if s.id not in others), own, others)

    @property
    def whole(self) -> bool:
        """Whether this view counts every entry into every stage (no other score owns a stage)."""
        return not self.others

    def order(self, stages: Sequence[str]) -> list[str]:
        """``stages`` (a funnel order, the nurture stages) less those of other scores."""
        return [s for s in stages if s not in self.others]

    def counted(self, moves: Sequence[str]) -> list[bool]:
        """For one lead's stage entries in the order they happened: whether each counts for this score."""
        out: list[bool] = []
        through = other = False  # entered a stage of this score alone / of other scores only, so far
        for stage in moves:
            out.append(stage not in self.others and (stage in self.own or through or not other))
            through = through or stage in self.own
            other = other or stage in self.others
        return out

    def decided(self, entries: Sequence[tuple[str, int]], stage: str, at_ms: int) -> bool:
        """Whether a sales decision given at ``at_ms`` on a lead waiting in ``stage`` is this score's:
        ``entries`` are the lead's stage entries (stage, time), oldest first; the entry into ``stage`` in
        force then (the newest at or before ``at_ms``; the first one when the decision is dated before
        any) must count for this score (``counted``). So a decision belongs to the score whose gate handed
        the lead to sales, as the hand-off queue counts the lead: in a shared hand-off stage, the score of
        the team's stage the lead came through (both, when it came through a stage of each)."""
        if self.whole:
            return True
        into = [i for i, (s, _) in enumerate(entries) if s == stage]
        if not into:  # no entry recorded: the stage alone says
            return stage not in self.others
        before = [i for i in into if entries[i][1] <= at_ms]
        return self.counted([s for s, _ in entries])[before[-1] if before else into[0]]

    def current(self, lead_id: ColumnElement[int], stage: ColumnElement[str]) -> ColumnElement[bool]:
        """SQL: whether a lead in ``stage`` now counts for this score: ``counted`` of its newest entry (the
        newest is in its history, so a stage of this score alone is an entry into one). Written as the
        leads *not* counted, read once per statement: those that entered another score's stage and none of
        this score's alone (a few entries), not as a probe of the history per lead in the stage."""
        if self.whole:
            return true()

        def entered(stages: frozenset[str]) -> Select[tuple[int]]:
            return select(stage_history.c.lead_id).where(stage_history.c.to_stage.in_(sorted(stages)))

        elsewhere = entered(self.others).except_(entered(self.own)) if self.own else entered(self.others)
        return and_(stage.not_in(sorted(self.others)), lead_id.not_in(elsewhere))


def team_score(lifecycle: Lifecycle, primary: str, entered: Sequence[str]) -> str:
    """The score whose team a lead's stage is for, so messages about the lead tell that score: the one
    owner of the newest of its ``entered`` stages (oldest first) that one score owns alone (its team's
    stage, or the shared stage it reached through it, as ``ScoreView.counted`` counts it); the primary
    when no such stage was entered."""
    owned = owners(lifecycle, primary)
    for stage in reversed(entered):
        names = owned.get(stage, frozenset())
        if len(names) == 1:
            return next(iter(names))
    return primary


def lead_team_score(conn: Connection, lifecycle: Lifecycle, lead_id: int) -> str:
    """``team_score`` of lead ``lead_id``'s stage history."""
    entered = select(stage_history.c.to_stage).where(stage_history.c.lead_id == lead_id)
    order = entered.order_by(stage_history.c.at_ms, stage_history.c.id)
    return team_score(lifecycle, primary_score(conn), [str(s) for s in conn.execute(order).scalars()])


def view_of(conn: Connection, lifecycle: Lifecycle, score: str | None) -> ScoreView:
    """The view of the score named (the primary when None; a name never published is NotFoundError)."""
    return ScoreView.of(lifecycle, resolve(conn, score), primary_score(conn))
