"""Backends that misbehave on purpose, for the run-orchestration tests."""

from __future__ import annotations

import os
import signal
import time

from torch import nn

from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.inputs import ModelInputs
from flopaudit.records import Granularity, Unit


class _Fake(Adapter):
    distribution = "flopaudit"
    module = "flopaudit"
    unit = Unit.MAC
    granularity = Granularity.MODULE_HOOKS


class RaisingAdapter(_Fake):
    name = "fake-raise"

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        raise RuntimeError("backend exploded")


class HangingAdapter(_Fake):
    name = "fake-hang"

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        time.sleep(60)
        return RawCount(raw_total=0, macs=0)


class CrashingAdapter(_Fake):
    name = "fake-crash"

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        os.kill(os.getpid(), signal.SIGSEGV)
        return RawCount(raw_total=0, macs=0)


class NoisyMutatingAdapter(_Fake):
    """Prints, warns, registers a hook, adds a buffer and flips train mode."""

    name = "fake-noisy"

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


FAKES = {
    "fake-raise": "fake_backends:RaisingAdapter",
    "fake-hang": "fake_backends:HangingAdapter",
    "fake-crash": "fake_backends:CrashingAdapter",
    "fake-noisy": "fake_backends:NoisyMutatingAdapter",
}
