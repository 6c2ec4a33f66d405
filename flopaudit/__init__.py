"""flopaudit: audit PyTorch FLOP/MAC/parameter counters against each other.

Python API::

    import flopaudit
    frame = flopaudit.audit(model, torch.randn(1, 3, 224, 224))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__version__ = "0.1.0"


def audit(
    model: Any,
    inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    backends: Iterable[str] | None = None,
    timeout: float | None = 120.0,
    isolate: bool = True,
) -> Any:
    """Count ``model(*inputs, **kwargs)`` with each backend; return a DataFrame.

    One row per backend with integer ``macs`` (normalised to multiply-
    accumulates for the whole batch), ``params``, ``ratio_to_reference``,
    ``status`` and ``error``. The model is never modified. Each count runs
    in a child process bounded by ``timeout`` seconds unless ``isolate`` is
    False.
    """
    from flopaudit.run import audit_model

    return audit_model(model, inputs, kwargs, backends=backends, timeout=timeout, isolate=isolate).to_frame()


def audit_zoo(
    models: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    *,
    backends: Iterable[str] | None = None,
    full: bool = False,
    timeout: float | None = 120.0,
) -> Any:
    """Audit zoo cases chosen by id, glob (``"resnet*"``) or tag; return a DataFrame.

    With neither ``models`` nor ``tags`` the default zoo is used (``full=True``:
    every case). Rows as in :func:`audit`, one per (model, backend).
    """
    from flopaudit.execution.refs import CaseRef
    from flopaudit.run import run_audit
    from flopaudit.zoo import select_cases

    cases = [CaseRef(c.id) for c in select_cases(list(models or ()), list(tags or ()), full=full)]
    return run_audit(cases, list(backends) if backends else None, timeout=timeout).to_frame()


__all__ = ["audit", "audit_zoo", "__version__"]
