"""Backends that misbehave on purpose, for the run-orchestration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

from torch import nn

from flopaudit.adapters import Backend, backend_names, register_backend, registration, unregister_backend
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.inputs import ModelInputs
from flopaudit.records import Granularity, Unit


def fake(name: str, adapter: str) -> Backend:
    """A MAC-counting, module-hook backend ``name`` whose adapter class is ``adapter``."""
    return Backend(name=name, adapter=adapter, description=f"test backend {name}", unit=Unit.MAC,
                   granularity=Granularity.MODULE_HOOKS, module="flopaudit")


@contextlib.contextmanager
def registered(backends: dict[Backend, str]) -> Iterator[None]:
    """Register ``{descriptor: adapter module}`` for the block (as a plug-in would), then put back what was."""
    before = {b.name: registration(b.name) for b in backends if b.name in backend_names()}
    for backend, module in backends.items():
        register_backend(backend, module)
    try:
        yield
    finally:
        for backend in backends:
            unregister_backend(backend.name)
        for previous in before.values():
            register_backend(*previous)


class _Fake(Adapter):
    pass


class RaisingAdapter(_Fake):
    backend = fake("fake-raise", "RaisingAdapter")

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        raise RuntimeError("backend exploded")


class HangingAdapter(_Fake):
    backend = fake("fake-hang", "HangingAdapter")

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        time.sleep(60)
        return RawCount(raw_total=0, macs=0)


class CrashingAdapter(_Fake):
    backend = fake("fake-crash", "CrashingAdapter")

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        os.kill(os.getpid(), signal.SIGSEGV)
        return RawCount(raw_total=0, macs=0)


class KilledAdapter(_Fake):
    """Dies as the kernel's out-of-memory killer ends a process: SIGKILL from outside flopaudit."""

    backend = fake("fake-killed", "KilledAdapter")

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        os.kill(os.getpid(), signal.SIGKILL)
        return RawCount(raw_total=0, macs=0)


class NoisyMutatingAdapter(_Fake):
    """Prints, warns, registers a hook, adds a buffer and flips train mode."""

    backend = fake("fake-noisy", "NoisyMutatingAdapter")

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        import warnings

        print("NOISY STDOUT")
        os.write(2, b"NOISY FD2\n")
        warnings.warn("noisy warning", stacklevel=2)
        model.register_forward_hook(lambda *a: None)
        model.register_buffer("total_ops", None)
        model.register_buffer("junk", __import__("torch").zeros(1))
        model.train(not model.training)
        return RawCount(raw_total=7, macs=7, params=1)


FAKES: dict[Backend, str] = {
    cls.backend: __name__ for cls in (RaisingAdapter, HangingAdapter, CrashingAdapter, NoisyMutatingAdapter)
}
"""The fake backends and the module of their adapters, for :func:`registered`."""
