"""SQL views for ad-hoc staff queries (docs/queries.md): open cases per office, repeat
sources, time to first action.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPEN_CASES_PER_OFFICE = """
CREATE VIEW open_cases_per_office AS
SELECT COALESCE(office, '') AS office,
       COUNT(*) AS open_cases,
       SUM(CASE WHEN assignee IS NULL THEN 1 ELSE 0 END) AS unassigned,
       MIN(created_at) AS oldest_created
FROM cases
WHERE status <> 'closed'
GROUP BY COALESCE(office, '')
"""

REPEAT_SOURCES = """
CREATE VIEW repeat_sources AS
SELECT i.kind AS kind,
       i.value AS value,
       COUNT(DISTINCT ci.case_id) AS cases,
       MIN(c.created_at) AS first_seen,
       MAX(c.created_at) AS last_seen
FROM identities i
JOIN case_identities ci ON ci.identity_id = i.id
JOIN cases c ON c.id = ci.case_id
WHERE ci.links = TRUE
GROUP BY i.kind, i.value
HAVING COUNT(DISTINCT ci.case_id) > 1
"""

FIRST_ACTION = """
CREATE VIEW case_first_action AS
SELECT c.id AS case_id,
       c.created_at AS created_at,
       MIN(e.at) AS first_action_at,
       {seconds} AS seconds_to_first_action
FROM cases c
LEFT JOIN events e ON e.case_id = c.id AND e.actor <> 'stopitd'
GROUP BY c.id, c.created_at
"""
SECONDS = {
    "sqlite": "(julianday(MIN(e.at)) - julianday(c.created_at)) * 86400.0",
    "postgresql": "EXTRACT(EPOCH FROM (MIN(e.at) - c.created_at))",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(OPEN_CASES_PER_OFFICE)
    op.execute(REPEAT_SOURCES)
    op.execute(FIRST_ACTION.format(seconds=SECONDS.get(dialect, SECONDS["postgresql"])))


def downgrade() -> None:
    for view in ("case_first_action", "repeat_sources", "open_cases_per_office"):
        op.execute(f"DROP VIEW {view}")
