"""Backends behind the one :class:`~flopaudit.adapters.base.Adapter` interface.

Each backend lives in its own module; :data:`ADAPTER_PATHS` maps backend ids
to ``module:Class`` so that importing this package imports no backend.
"""

from __future__ import annotations

import importlib

from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.errors import UserError

ADAPTER_PATHS: dict[str, str] = {
    "reference": "flopaudit.adapters.reference:ReferenceAdapter",
    "thop": "flopaudit.adapters.thop:ThopAdapter",
    "ptflops-pytorch": "flopaudit.adapters.ptflops_pytorch:PtflopsPytorchAdapter",
    "ptflops-aten": "flopaudit.adapters.ptflops_aten:PtflopsAtenAdapter",
    "fvcore": "flopaudit.adapters.fvcore:FvcoreAdapter",
    "torchinfo": "flopaudit.adapters.torchinfo:TorchinfoAdapter",
    "torch-flop-counter": "flopaudit.adapters.torch_flop_counter:TorchFlopCounterAdapter",
    "torchstat": "flopaudit.adapters.torchstat:TorchstatAdapter",
    "torchsummary": "flopaudit.adapters.torchsummary:TorchsummaryAdapter",
    "torch-summary": "flopaudit.adapters.torch_summary:TorchSummaryAdapter",
    "pytorch-model-summary": "flopaudit.adapters.pytorch_model_summary:PytorchModelSummaryAdapter",
    "calflops": "flopaudit.adapters.calflops:CalflopsAdapter",
    "deepspeed": "flopaudit.adapters.deepspeed:DeepSpeedAdapter",
    "torchprofile": "flopaudit.adapters.torchprofile:TorchprofileAdapter",
    "torch-profiler": "flopaudit.adapters.torch_profiler:TorchProfilerAdapter",
}

BACKEND_NAMES: tuple[str, ...] = tuple(ADAPTER_PATHS)


def get_adapter(name: str) -> Adapter:
    """Instantiate the adapter for backend ``name``."""
    try:
        path = ADAPTER_PATHS[name]
    except KeyError:
        raise UserError(f"unknown backend {name!r}; valid backends: {', '.join(BACKEND_NAMES)}") from None
    module_name, _, cls_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls()


def all_adapters() -> list[Adapter]:
    return [get_adapter(n) for n in BACKEND_NAMES]


__all__ = ["Adapter", "RawCount", "ADAPTER_PATHS", "BACKEND_NAMES", "get_adapter", "all_adapters"]
