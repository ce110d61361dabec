"""What changed between two models: rules added, removed or changed, and the sections that differ (the
scale, defaults, lists, privacy and the lifecycle: stages, teams, the SLA and its business hours)."""

from __future__ import annotations

from typing import Any

from leadscore.model.scoring_model import ScoringModel


def rule_changes(old: ScoringModel, new: ScoringModel) -> list[tuple[str, str, str]]:
    """(change, rule id, detail) for rules and settings that differ."""

    def rules(m: ScoringModel) -> dict[str, dict[str, Any]]:
        return {r.id: r.model_dump(mode="json") for r in (*m.fit, *m.engagement, *m.groups)}

    a, b = rules(old), rules(new)
    out: list[tuple[str, str, str]] = []
    for rid in sorted(set(a) | set(b)):
        if rid not in a:
            out.append(("added", rid, b[rid].get("name", "")))
        elif rid not in b:
            out.append(("removed", rid, a[rid].get("name", "")))
        elif a[rid] != b[rid]:
            fields = [k for k in sorted(set(a[rid]) | set(b[rid])) if a[rid].get(k) != b[rid].get(k)]
            detail = "; ".join(f"{k}: {a[rid].get(k)!r} → {b[rid].get(k)!r}" for k in fields)
            out.append(("changed", rid, detail))
    for section in ("scale", "defaults", "lists", "privacy", "lifecycle"):
        if getattr(old, section) != getattr(new, section):
            out.append(("changed", section, ""))
    return out
