"""indexes for the dashboard at 100k leads: each named score in the order the leads list sorts it
(score, fit, engagement; the lead id breaks ties), and its fit × engagement cells (the matrix counts them
from the index alone), and each band in score order; they replace the score and band indexes that ignored
the score's name

Revision ID: 0022
Revises: 0016
"""

from alembic import op

revision = "0022"
down_revision = "0017"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_scores_name_score": ["score_name", "score", "lead_id"],
    "ix_scores_name_fit": ["score_name", "fit_score", "lead_id"],
    "ix_scores_name_engagement": ["score_name", "engagement_score", "lead_id"],
    "ix_scores_name_cell": ["score_name", "grade", "level"],
    "ix_scores_name_band": ["score_name", "band", "score", "lead_id"],
}


def upgrade() -> None:
    op.drop_index("ix_scores_score", table_name="scores")
    op.drop_index("ix_scores_band", table_name="scores")
    for name, columns in INDEXES.items():
        op.create_index(name, "scores", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="scores")
    op.create_index("ix_scores_score", "scores", ["score"])
    op.create_index("ix_scores_band", "scores", ["band"])
