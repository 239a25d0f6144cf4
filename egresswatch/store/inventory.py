"""The containers Docker described, and the capture daemon's published status: small tables
written now and then, read by ``/containers``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from egresswatch.attribution.containers import Container
from egresswatch.store.models import ContainerRow, StatusRow

Sighting = tuple[Container, float]
"""A container as Docker described it, and when."""


def write_containers(conn: Connection, sightings: Sequence[Sighting]) -> None:
    """Insert containers not stored yet; update the others (name, image and posture can
    change with a re-creation under the same id only in theory, but the last word wins)."""
    for container, at in sightings:
        values = {
            "name": container.name,
            "image": container.image,
            "network_mode": container.network_mode,
            "privileged": container.privileged,
            "host_pid": container.host_pid,
            "docker_socket": container.docker_socket,
            "cap_add": json.dumps(sorted(container.cap_add)),
        }
        known = conn.execute(
            select(ContainerRow.first_seen, ContainerRow.last_seen).where(
                ContainerRow.container_id == container.id
            )
        ).first()
        if known is None:
            conn.execute(insert(ContainerRow).values(
                container_id=container.id, first_seen=at, last_seen=at, **values
            ))  # fmt: skip
        else:
            conn.execute(
                update(ContainerRow)
                .where(ContainerRow.container_id == container.id)
                .values(
                    first_seen=min(known.first_seen, at),
                    last_seen=max(known.last_seen, at),
                    **values,
                )
            )


def select_containers(conn: Connection) -> list[dict[str, Any]]:
    """Every stored container, most recently seen first."""
    rows = conn.execute(select(ContainerRow.__table__).order_by(ContainerRow.last_seen.desc()))
    found = []
    for row in rows:
        out = dict(row._mapping)
        del out["id"]
        out["cap_add"] = json.loads(out["cap_add"])
        found.append(out)
    return found


def write_status(conn: Connection, host: str, updated: float, status: dict[str, Any]) -> None:
    """Replace this host's status."""
    text = json.dumps(status, separators=(",", ":"))
    changed = conn.execute(
        update(StatusRow).where(StatusRow.host == host).values(updated=updated, status=text)
    )
    if changed.rowcount == 0:
        conn.execute(insert(StatusRow).values(host=host, updated=updated, status=text))


def select_status(conn: Connection) -> list[dict[str, Any]]:
    """Every host's last published status: ``{"host", "updated", "status"}``."""
    rows = conn.execute(select(StatusRow.host, StatusRow.updated, StatusRow.status))
    return [{"host": h, "updated": u, "status": json.loads(s)} for h, u, s in rows]
