"""merge the lifecycle (0005) and users/audit (0006) branches

Revision ID: 0007
Revises: 0005, 0006
"""

revision = "0007"
down_revision = ("0005", "0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to do: both branches' tables exist once both are applied."""


def downgrade() -> None:
    """Nothing to undo here; downgrading continues into each branch."""
