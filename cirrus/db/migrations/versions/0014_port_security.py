"""ports.allowed_address_pairs: Neutron's allowed-address-pairs extension (issue 14, sg)

Revision ID: 0014_port_security
Revises: 0013_routers
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_port_security"
down_revision = "0013_routers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.add_column(sa.Column("allowed_address_pairs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_column("allowed_address_pairs")
