"""Models that misbehave on purpose: the fault-handling zoo (tag ``faulty``).

Each one fails in a way a user's model can: it hangs, hangs only under a
counter's module hooks, crashes the interpreter, exits, allocates more
memory than the machine has, prints a flood, or its factory raises. A run
must turn each fault into the status of the cells it touches and count
everything else. These cases run only when named or selected by their tag
(``flopaudit run --tags faulty --timeout 5``), never with ``--full``.
"""

from __future__ import annotations

import os
import signal
import time

import torch
from torch import nn

from flopaudit.zoo.case import ModelCase, tensor_inputs

HUGE_BYTES = 1 << 46
"""64 TiB: more address space than any machine here can back, so the allocation fails at once."""
PRINTED_LINES = 100_000


class _Linear(nn.Module):
    """A Linear(8, 4) whose forward first does something bad (``fault``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def fault(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fault()
        return self.fc(x)


class HangsInForward(_Linear):
    def fault(self) -> None:
        while True:
            time.sleep(1)


class HangsUnderModuleHooks(_Linear):
    """Hangs only when a counter has put a forward hook on its layer (thop, ptflops, torchinfo do)."""

    def fault(self) -> None:
        while self.fc._forward_hooks or self.fc._forward_pre_hooks:
            time.sleep(1)


class Segfaults(_Linear):
    def fault(self) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)


class Exits(_Linear):
    def fault(self) -> None:
        os._exit(3)


class AllocatesTooMuch(_Linear):
    def fault(self) -> None:
        torch.empty(HUGE_BYTES, dtype=torch.uint8)


class Prints(_Linear):
    def fault(self) -> None:
        for i in range(PRINTED_LINES):
            print(f"model output line {i}")


def _factory_raises() -> nn.Module:
    raise RuntimeError("the model factory failed on purpose")


def cases() -> list[ModelCase]:
    """One case per fault; every one is a Linear(8, 4) on (2, 8) when it runs at all."""
    faults = [
        ("faulty-hang-forward", HangsInForward, "forward never returns"),
        ("faulty-hang-under-hooks", HangsUnderModuleHooks,
         "forward never returns while its Linear carries a forward hook (thop, ptflops, torchinfo)"),
        ("faulty-segfault", Segfaults, "forward kills its process with SIGSEGV"),
        ("faulty-exit", Exits, "forward calls os._exit(3)"),
        ("faulty-huge-allocation", AllocatesTooMuch, f"forward allocates {HUGE_BYTES >> 40} TiB"),
        ("faulty-prints", Prints, f"forward prints {PRINTED_LINES} lines, then computes normally"),
    ]
    out = [
        ModelCase(id=case_id, build=cls, make_inputs=tensor_inputs(2, 8), tags=frozenset({"faulty"}),
                  expected_macs=2 * 8 * 4, expected_params=8 * 4 + 4, description=text)
        for case_id, cls, text in faults
    ]
    out.append(ModelCase(id="faulty-factory-raises", build=_factory_raises, make_inputs=tensor_inputs(2, 8),
                         tags=frozenset({"faulty"}), description="the model factory raises RuntimeError"))
    return out
