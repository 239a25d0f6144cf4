"""Persistence: SQLAlchemy models, Alembic migrations, batched writes, queries.

Only this package touches SQLAlchemy; rows never leave it (callers get records and dicts).
"""

from egresswatch.store.database import Database
from egresswatch.store.queries import AlertFilter, DnsFilter, FlowFilter

__all__ = ["AlertFilter", "Database", "DnsFilter", "FlowFilter"]
