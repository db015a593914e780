"""The service's first schema: checks, their targets, results, queue jobs and probes, users and API tokens.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "checks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("ticket", sa.String(200), nullable=False),
        sa.Column("contact", sa.String(320), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("hosts_text", sa.Text, nullable=False),
        sa.Column("vantages", sa.String(500), nullable=False),
        sa.Column("only_kinds", sa.String(500), nullable=False),
        sa.Column("inventory_sha256", sa.String(64), nullable=True),
        sa.Column("egress_address", sa.String(64), nullable=False),
        sa.Column("sealed_inventory", sa.LargeBinary, nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("report_json", sa.Text, nullable=True),
        sa.Column("report_sig", sa.Text, nullable=True),
        sa.Column("report_file", sa.String(500), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_checks_client_address", "checks", ["client_address"])
    op.create_index("ix_checks_created_at", "checks", ["created_at"])
    op.create_index("ix_checks_state", "checks", ["state"])
    op.create_table(
        "check_targets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_id", sa.String(64), sa.ForeignKey("checks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_index("ix_check_targets_check_id", "check_targets", ["check_id"])
    op.create_index("ix_check_targets_address", "check_targets", ["address"])
    op.create_index("ix_check_targets_created_at", "check_targets", ["created_at"])
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_id", sa.String(64), sa.ForeignKey("checks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("result_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("remediation", sa.Text, nullable=False),
        sa.Column("vantage", sa.String(64), nullable=True),
        sa.Column("job", sa.String(200), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=True),
    )
    op.create_index("ix_check_results_check_id", "check_results", ["check_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_id", sa.String(64), sa.ForeignKey("checks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("vantage", sa.String(64), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("task_id", sa.String(200), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("result_json", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_jobs_check_id", "jobs", ["check_id"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_id", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
    )
    op.create_index("ix_probes_check_id", "probes", ["check_id"])
    op.create_table(
        "users",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    for table in ("api_tokens", "users", "probes", "jobs", "check_results", "check_targets", "checks"):
        op.drop_table(table)
