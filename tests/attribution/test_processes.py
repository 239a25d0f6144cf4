"""Matching the kernel's connect reports to flows; the container from a process's cgroup.
(The probe itself runs against the real kernel in tests/docker/test_processes.py.)"""

from __future__ import annotations

from pathlib import Path

from egresswatch.attribution.kernel import Connect
from egresswatch.attribution.processes import ProcessMap

CID = "5989bf329b64f6e5b05eaa36d782da82cfe77fe1ab4dff61131640062a2023d6"


def report(
    t: float, *, pid: int = 100, proto: int = 6, src: str | None = "172.17.0.2",
    sport: int = 40000, dst: str = "203.0.113.80", dport: int = 443, cgroup: int = 7,
) -> Connect:  # fmt: skip
    return Connect(time=t, proto=proto, src=src, sport=sport, dst=dst, dport=dport, pid=pid,
                   tid=pid, uid=1000, gid=1000, comm="wget", cgroup=cgroup, cookie=pid)  # fmt: skip


def proc_tree(tmp_path: Path, pid: int, cgroup_path: str) -> Path:
    base = tmp_path / str(pid)
    base.mkdir(parents=True)
    (base / "cgroup").write_text(f"9:name=systemd:{cgroup_path}\n0::{cgroup_path}\n")
    (base / "cmdline").write_bytes(b"wget\0-q\0http://203.0.113.80/\0")
    (base / "exe").symlink_to("/bin/busybox")
    return tmp_path


def test_a_flow_takes_the_report_for_its_own_ports_made_before_it(tmp_path: Path) -> None:
    m = ProcessMap(proc=proc_tree(tmp_path, 100, f"/docker/{CID}"))
    m.add(report(10.0))
    m.add(report(20.0, pid=200, cgroup=8))  # the same ports reused later by another process
    first = m.owner(6, "172.17.0.2", 40000, "203.0.113.80", 443, at=10.001)
    assert first is not None and first.pid == 100 and first.container_id == CID
    assert first.cmdline == "wget -q http://203.0.113.80/" and first.exe == "/bin/busybox"
    later = m.owner(6, "172.17.0.2", 40000, "203.0.113.80", 443, at=20.002)
    assert later is not None and later.pid == 200 and later.exe is None  # gone: no /proc
    assert m.owner(6, "172.17.0.2", 40000, "203.0.113.80", 443, at=9.0) is None
    assert m.owner(6, "172.17.0.3", 40000, "203.0.113.80", 443, at=10.5) is None  # not its src


def test_a_connected_udp_socket_is_matched_by_destination_and_time() -> None:
    m = ProcessMap()
    m.add(report(10.0, proto=17, src=None, sport=0, dport=53))  # connect: port not bound yet
    found = m.owner(17, "172.17.0.2", 51000, "203.0.113.80", 53, at=10.01)
    assert found is not None and found.pid == 100
    assert m.owner(17, "172.17.0.2", 51000, "203.0.113.80", 53, at=30.0) is None  # too late
    assert m.owner(6, "172.17.0.2", 51000, "203.0.113.80", 53, at=10.01) is None


def test_reports_are_forgotten_after_keep() -> None:
    m = ProcessMap(keep=60.0)
    m.add(report(10.0))
    m.forget(now=50.0)
    assert m.owner(6, "172.17.0.2", 40000, "203.0.113.80", 443, at=10.001) is not None
    m.forget(now=71.0)
    assert m.owner(6, "172.17.0.2", 40000, "203.0.113.80", 443, at=10.001) is None


def test_a_process_gone_before_its_proc_is_read_is_placed_by_its_cgroup_directory(
    tmp_path: Path,
) -> None:
    """The kernel's cgroup id is the inode of the cgroup's directory, which outlives a process
    that lived a millisecond."""
    cgroups = tmp_path / "cgroup"
    (cgroups / "docker" / CID).mkdir(parents=True)
    (cgroups / "user.slice").mkdir()
    m = ProcessMap(proc=tmp_path / "proc", cgroups=cgroups)  # no /proc entries at all
    m.add(report(10.0, cgroup=(cgroups / "docker" / CID).stat().st_ino))
    m.add(report(11.0, sport=40001, cgroup=(cgroups / "user.slice").stat().st_ino))
    m.add(report(12.0, sport=40002, cgroup=999_999_999))  # its cgroup is gone too
    in_container = m.owner(6, "172.17.0.2", 40000, "203.0.113.80", 443, at=10.001)
    assert in_container is not None and in_container.container_id == CID
    on_host = m.owner(6, "172.17.0.2", 40001, "203.0.113.80", 443, at=11.001)
    assert on_host is not None and on_host.container_id is None and on_host.place_known
    unknown = m.owner(6, "172.17.0.2", 40002, "203.0.113.80", 443, at=12.001)
    assert unknown is not None and not unknown.place_known
