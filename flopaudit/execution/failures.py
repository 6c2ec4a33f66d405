"""Results for counts that produced nothing, and the words that say why."""

from __future__ import annotations

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
