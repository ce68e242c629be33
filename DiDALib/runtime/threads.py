"""How many threads a runtime's operators get: the physical cores this process may run on.

Hyper-threads share a core's arithmetic units, so a convolution gains nothing from a second thread per core and
loses to the contention; and more threads than cores (say, onnxruntime's pool beside torch's) make every thread
wait for the slowest. Each runtime therefore gets one operator thread per physical core, one runtime at a time,
and its threads sleep, not spin, between calls, so that DiDA's own work on torch's threads (the next batch of
masked images) is not slowed by threads that wait busily.
"""

from __future__ import annotations

import os
from pathlib import Path


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def physical_cores(cpuinfo: str | None = None, allowed: set[int] | None = None) -> int:
    """The physical cores among the CPUs this process may use (``/proc/cpuinfo``'s physical id and core id of
    each); the number of usable CPUs where that is not known."""
    allowed = _allowed_cpus() if allowed is None else allowed
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    cores, cpu, package = set(), None, "0"
    for line in cpuinfo.splitlines() + [""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            cpu = int(value) if value.isdigit() else None
        elif key == "physical id":
            package = value
        elif key == "core id" and cpu in allowed:
            cores.add((package, value))
    return max(1, len(cores) if cores else len(allowed))
