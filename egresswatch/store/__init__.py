"""Persistence: SQLAlchemy models, Alembic migrations, batched writes, queries.

Only this package touches SQLAlchemy; rows never leave it (callers get records and dicts).
"""

from egresswatch.store.database import Database
from egresswatch.store.queries import DnsFilter, FlowFilter

__all__ = ["Database", "DnsFilter", "FlowFilter"]
