"""What each role may do. Every dashboard page and action names one permission; the authorisation
matrix test checks every route against this table."""

from __future__ import annotations

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "leads.read",
            "leads.export",
            "feedback",
            "model.read",
            "model.validate",
            "model.publish",
            "evaluate",
            "users.manage",
            "keys.manage",
            "privacy",
            "audit.read",
            "deadletters.manage",
        }
    ),
    "marketing": frozenset(
        {"leads.read", "leads.export", "model.read", "model.validate", "model.publish", "evaluate"}
    ),
    "sales": frozenset({"leads.read", "feedback", "model.read"}),
}


def allowed(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())
