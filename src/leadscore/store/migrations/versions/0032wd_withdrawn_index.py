"""``ix_leads_withdrawn``: a partial index of the leads who withdrew tracking consent (their
``consent_tracking`` attribute is JSON false), whom every list of people leaves out
(``lifecycle.lead_filter.withdrawn_ids``). A list, count or matrix takes them apart from the index, a few
rows, instead of reading every lead's attributes. Nothing is rewritten; downgrading drops the index.

Revision ID: 0032wd
Revises: 0031en
"""

import sqlalchemy as sa
from alembic import op

from leadscore.store.schema import WITHDRAWN_SQL

revision = "0032wd"
down_revision = "0031en"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_leads_withdrawn",
        "leads",
        ["id"],
        sqlite_where=sa.text(WITHDRAWN_SQL["sqlite"].format(attributes="attributes")),
        postgresql_where=sa.text(WITHDRAWN_SQL["postgresql"].format(attributes="attributes")),
    )


def downgrade() -> None:
    op.drop_index("ix_leads_withdrawn", table_name="leads")
