"""Retiring a named score (a product line dropped): its active version stops being active, so nothing
scores it any more (events, the clock, full rescoring, batch ``--all-scores``: each scores the active
versions) and no picker or list of a lead's scores offers it; its scores, ledgers, history, crossings and
versions stay as they were, read when it is named (``?score=NAME``, ``--score NAME``); its open health
alerts are cleared (kept, as cleared). Publishing, promoting or rolling back a version of it brings it
back, rescoring every lead.

The primary is never retired (every surface reads it when no score is named), and neither is a score the
active lifecycle still names (a gate, a crossing action, a segment: each would read a score no one
updates), which the refusal lists."""

from __future__ import annotations

from leadscore.errors import StoreError
from leadscore.scoring.pipeline import active_models
from leadscore.scoring.run import now_ms
from leadscore.store import Store
from leadscore.store.alerts import check_score, clear_alert, open_alerts
from leadscore.store.audit import audit
from leadscore.store.model_versions import (
    ModelVersion,
    active_versions,
    deactivate,
    list_versions,
    take_models,
)
from leadscore.store.score_names import primary_score, resolve
from leadscore.store.shadows import remove_shadow, shadow_versions


def retire_score(store: Store, name: str, *, actor: str = "cli") -> ModelVersion:
    """Retire the score ``name`` (module docstring) and stop its shadows; audited as ``model.retire``.
    Returns the version that was active."""
    with store.begin() as conn:
        take_models(conn)  # no save with the models read before, no activation, until this commits
        name, primary = resolve(conn, name), primary_score(conn)
        if name == primary:
            raise StoreError(
                f"{name!r} is the primary score: every list, report and gate reads it when no score is named, "
                "so it cannot be retired"
            )
        version = next((v for v in active_versions(conn) if v.score_name == name), None)
        if version is None:
            raise StoreError(
                f"the score {name!r} is retired already: publish a version of it to score it again"
            )
        naming = [
            where
            for active in active_models(conn)
            if active.model.lifecycle is not None
            and active.version is not None
            and active.version.id != version.id
            for where, named in active.model.lifecycle.named_scores()
            if named == name
        ]
        if naming:
            raise StoreError(
                f"the score {name!r} is still named by the active lifecycle ({', '.join(naming)}): publish a "
                "lifecycle that does not name it, then retire it"
            )
        deactivate(conn, version.id)
        stamp = now_ms()
        # no health check runs for it any more: its open alerts would stay open (and on every page's banner)
        for check, alert in open_alerts(conn).items():
            if check_score(check, primary) == name:
                clear_alert(conn, int(alert["id"]), stamp)
        shadows = shadow_versions(conn)
        for other in list_versions(conn, name):
            if other.id in shadows:
                remove_shadow(conn, other.id)
        audit(conn, stamp, actor, "model.retire", version.label, score=name, sha256=version.sha256)
    return version
