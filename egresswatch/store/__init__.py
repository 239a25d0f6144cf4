"""Persistence: SQLAlchemy models, Alembic migrations, batched writes, queries.

Only this package touches SQLAlchemy; rows never leave it (callers get records and dicts).
"""

from egresswatch.store.database import Database
from egresswatch.store.queries import AlertFilter, DnsFilter, FlowFilter
from egresswatch.store.rollups import TotalsFilter

__all__ = ["AlertFilter", "Database", "DnsFilter", "FlowFilter", "TotalsFilter"]
