"""The same random draws for every count of a model.

A model whose control flow depends on random numbers takes another path each
time it runs: a Hugging Face encoder with LayerDrop (Wav2Vec2's default
``layerdrop=0.1``) skips a random subset of its layers in train mode, so two
counters, or the reference's passes, would each count different layers and
their difference would be noise. :func:`same_draws` seeds the random number
generators a model's ``forward`` may read (torch's CPU generator, every
initialised CUDA device's, Python's ``random`` and numpy's global one) to one
fixed seed before a count, and puts their states back afterwards, so every
count of a model in a run sees the same draws and a run is reproducible.

A backend that draws its own inputs before it runs the model (torchsummary's
``torch.rand(2, *size)``, torchstat's ``torch.rand(1, C, H, W)``) would leave
the model other draws: its adapter runs it under :func:`reseeded_at_first_call`,
which seeds the generators again as the model's first call starts.

Not covered: a model that draws from a generator of its own (a
``torch.Generator`` it holds, ``numpy.random.default_rng()``), or whose draws
depend on how often a counter runs it (a backend that runs the model twice
sees the second call's draws).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator

import torch

COUNT_SEED = 0
"""The seed every count starts from."""


@contextlib.contextmanager
def same_draws(seed: int = COUNT_SEED) -> Iterator[None]:
    """Run the block with torch's, Python's and numpy's global generators seeded to
    ``seed``; restore their states on exit."""
    cuda = _cuda_devices()
    py_state = random.getstate()
    numpy = sys.modules.get("numpy")
    np_state = numpy.random.get_state() if numpy is not None else None
    with torch.random.fork_rng(devices=cuda):
        _seed(seed, cuda)
        try:
            yield
        finally:
            random.setstate(py_state)
            if numpy is not None:
                numpy.random.set_state(np_state)


@contextlib.contextmanager
def reseeded_at_first_call(model: torch.nn.Module, seed: int = COUNT_SEED) -> Iterator[None]:
    """Seed the generators (as :func:`same_draws` does) again when ``model``'s first call
    in the block starts, whatever was drawn before it (a backend's own random inputs),
    through a forward pre-hook removed on the first call or on exit (a ScriptModule,
    which refuses hooks, is left alone). Use inside
    :func:`same_draws`, which puts the generators' states back."""
    handle = None

    def reseed(module: torch.nn.Module, args: object) -> None:
        assert handle is not None
        handle.remove()
        _seed(seed, _cuda_devices())

    try:
        handle = model.register_forward_pre_hook(reseed, prepend=True)
    except RuntimeError:  # a ScriptModule refuses hooks (so do the backends' own)
        yield
        return
    try:
        yield
    finally:
        handle.remove()


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


def _seed(seed: int, cuda: list[int]) -> None:
    """Seed torch's CPU generator, those of the ``cuda`` devices, Python's and numpy's global ones."""
    torch.random.default_generator.manual_seed(seed)  # not torch.manual_seed: it would queue a CUDA seed
    for device in cuda:
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)


__all__ = ["COUNT_SEED", "reseeded_at_first_call", "same_draws"]
