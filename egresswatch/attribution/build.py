"""Builds the eBPF probe: ``python -m egresswatch.attribution.build``.

CO-RE: compiled once against this kernel's BTF (``vmlinux.h`` from bpftool), the object loads on
any kernel with BTF. Needs clang, libbpf-dev (the bpf_helpers.h headers) and bpftool; the
quickstart and the test script install them and run this.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from egresswatch.attribution.kernel import OBJECT

SOURCE = OBJECT.with_name("connect.bpf.c")
BTF = Path("/sys/kernel/btf/vmlinux")
_ARCH = {"x86_64": "x86", "aarch64": "arm64"}


def build(out: Path = OBJECT) -> Path:
    """Compile SOURCE into ``out``; raises RuntimeError with the missing piece named."""
    for tool, package in (("clang", "clang"), ("bpftool", "bpftool")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install {package}")
    if not BTF.exists():
        raise RuntimeError(f"{BTF} missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")
    arch = _ARCH.get(platform.machine(), platform.machine())
    with tempfile.TemporaryDirectory() as tmp:
        header = Path(tmp) / "vmlinux.h"
        with header.open("w") as f:
            subprocess.run(
                ["bpftool", "btf", "dump", "file", str(BTF), "format", "c"], stdout=f, check=True
            )
        subprocess.run(
            ["clang", "-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{arch}", f"-I{tmp}",
             "-c", str(SOURCE), "-o", str(out)],
            check=True,
        )  # fmt: skip
    return out


if __name__ == "__main__":
    try:
        print(f"built {build()}")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        sys.exit(f"egresswatch: eBPF probe not built: {exc}")
