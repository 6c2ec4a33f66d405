"""Results for counts that produced nothing, and the words that say why."""

from __future__ import annotations

import re
import signal

from flopaudit.records import CountResult, Status, Unit, installed_version


def backend_facts(backend: str) -> tuple[str, Unit]:
    """(installed version, raw unit) of ``backend``, read from its descriptor ("" and MAC when unknown)."""
    from flopaudit.adapters import get_backend

    try:
        described = get_backend(backend)
    except Exception:  # noqa: BLE001 - an unknown or broken backend still gets a result
        return "", Unit.MAC
    version = installed_version(described.distribution) if described.distribution else installed_version("torch")
    return version, described.unit


def failed_result(model: str, backend: str, status: Status, message: str, batch_size: int | None = None) -> CountResult:
    """A result for a count that produced nothing (crash, timeout, model failure)."""
    version, unit = backend_facts(backend)
    return CountResult(
        model=model,
        backend=backend,
        backend_version=version,
        torch_version=installed_version("torch"),
        unit=unit,
        status=status,
        batch_size=batch_size,
        error=message,
    )


def exit_description(code: int | None) -> str:
    """``-11 -> "signal SIGSEGV"``, ``3 -> "exit code 3"``."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


_FATAL = re.compile(r"^Fatal Python error: (.+)$", re.MULTILINE)
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<function>\S+)', re.MULTILINE)
LAST_WORDS_CHARS = 300


def last_words(output: str) -> str:
    """What a process that died wrote last, for its error message: where Python's fault handler
    dumped its stack (a crash), the fault and where (:func:`stack_position`); otherwise its last
    lines, at most :data:`LAST_WORDS_CHARS` characters; ``""`` where it wrote nothing."""
    fatal = _FATAL.search(output)
    if fatal:
        where = stack_position(output[fatal.end():])
        return f"{fatal.group(1).strip()}" + (f" in {where}" if where else "")
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("[... ")]
    said = " / ".join(lines[-3:])
    return said if len(said) <= LAST_WORDS_CHARS else "..." + said[-LAST_WORDS_CHARS:].split(" ", 1)[-1]


def stack_position(output: str) -> str:
    """The innermost frame of the last stack Python's fault handler dumped in ``output`` that is
    outside torch, flopaudit and Python's own library (else the innermost), as ``function (file,
    line n)``; ``""`` if none."""
    start = output.rfind("(most recent call first)")
    frames = list(_FRAME.finditer(output, max(start, 0)))
    own = next((m for m in frames if not _library_file(m["file"])), frames[0] if frames else None)
    return f"{own['function']} ({own['file']}, line {own['line']})" if own else ""


def _library_file(path: str) -> bool:
    """Whether a frame's file is torch's, flopaudit's (its zoo's models aside) or Python's own library."""
    import sysconfig

    parts = path.replace("\\", "/").split("/")
    if "flopaudit" in parts[:-1]:
        return "zoo" not in parts[parts.index("flopaudit"):-1]
    stdlib = sysconfig.get_paths()["stdlib"]
    return "torch" in parts[:-1] or path.startswith("<") or (path.startswith(stdlib) and "site-packages" not in parts)
