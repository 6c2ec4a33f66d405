"""The memory guard of one count: an address-space limit in the counting child."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

GIB = 1024**3

_OOM_MARKERS = (
    "MemoryError",
    "can't allocate memory",
    "Cannot allocate memory",
    "std::bad_alloc",
    "out of memory",
)


def address_space_bytes() -> int:
    """This process's current virtual memory size (``/proc/self/statm``), 0 where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def limit_memory(max_gb: float) -> None:
    """Let this process map at most ``max_gb`` GiB more than it has mapped now.

    Sets the soft ``RLIMIT_AS`` (virtual address space) to the current size
    plus ``max_gb`` GiB, so an allocation beyond it fails (torch raises
    ``RuntimeError: ... can't allocate memory``, Python ``MemoryError``)
    instead of the machine swapping or the OOM killer picking a process.
    Meant for the forked child that runs one count: the limit dies with it.

    NB: address space, not resident memory: it counts mapped but untouched
    pages and the pages shared copy-on-write with the parent, so the limit
    is on what the count *adds* to the process it was forked from.
    """
    import resource

    if max_gb <= 0:
        raise ValueError(f"max_gb must be positive, not {max_gb}")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = address_space_bytes() + int(max_gb * GIB)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def memory_cap(max_gb: float | None) -> Iterator[None]:
    """:func:`limit_memory` for the duration of the block, then the limit this process had before.

    For a long-lived worker that runs many phases: each phase may add
    ``max_gb`` GiB to what the worker had mapped when the phase began.
    """
    if not max_gb:
        yield
        return
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    limit_memory(max_gb)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, before)


def death_note(died: str, max_gb: float | None) -> str:
    """What a process's death by ``died`` (``"signal SIGKILL"``...) most likely
    means, in brackets after a space, or ``""``.

    flopaudit kills a process itself only past its time limit, and says so
    there; a process over ``--max-memory`` fails an allocation and aborts or
    is killed. Without that limit a SIGKILL from nowhere is, on Linux, the
    kernel's out-of-memory killer (or a person): the note says so and names
    the switch that turns it into a memory error of the count alone.
    """
    if died not in ("signal SIGKILL", "signal SIGABRT"):
        return ""
    if max_gb:
        return f" (a count over the --max-memory limit of {max_gb:g} GiB can end this way)"
    if died == "signal SIGKILL":
        return (" (not by flopaudit: the system's out-of-memory killer ends a process this way; with --max-memory "
                "GB a count that needs more fails with a memory error instead)")
    return ""


def looks_out_of_memory(message: str | None) -> bool:
    """Whether an error message reads like a failed allocation (and does not say so already)."""
    return bool(message) and "(--max-memory)" not in message and any(marker in message for marker in _OOM_MARKERS)


def memory_message(max_gb: float, original: str) -> str:
    """The error of a count stopped by ``--max-memory``, with the original first line."""
    first = original.strip().splitlines()[0] if original.strip() else ""
    return (f"exceeded the memory limit of {max_gb:g} GiB (--max-memory); the count was stopped: {first}")
