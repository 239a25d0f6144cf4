"""The REST API for dashboards: flows, alerts, DNS history (FastAPI, under /api/v1)."""
