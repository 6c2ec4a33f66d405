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


__all__ = ["audit", "__version__"]
