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

Generators a model holds as module attributes (a ``torch.Generator``, a
``numpy.random.Generator`` from ``default_rng``, a ``numpy.random.RandomState``)
are seeded too, each to the same seed, and given their states back.

Not covered: a generator held deeper (in a list, a dict or another object),
or draws that depend on how often a counter runs the model (a backend that
runs it twice sees the second call's draws).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator
from typing import Any

import torch

COUNT_SEED = 0
"""The seed every count starts from."""


@contextlib.contextmanager
def same_draws(seed: int = COUNT_SEED, model: torch.nn.Module | None = None) -> Iterator[None]:
    """Run the block with torch's, Python's and numpy's global generators, and those
    ``model``'s modules hold as attributes, seeded to ``seed``; restore their states on exit."""
    cuda = _cuda_devices()
    py_state = random.getstate()
    numpy = sys.modules.get("numpy")
    np_state = numpy.random.get_state() if numpy is not None else None
    held = [(g, _state(g)) for g in held_generators(model)] if model is not None else []
    with torch.random.fork_rng(devices=cuda):
        _seed(seed, cuda)
        for generator, _ in held:
            _seed_held(generator, seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            if numpy is not None:
                numpy.random.set_state(np_state)
            for generator, state in held:
                _set_state(generator, state)


def held_generators(model: torch.nn.Module) -> list[Any]:
    """The random generators ``model``'s modules hold as attributes, each once: ``torch.Generator``,
    ``numpy.random.Generator`` and ``numpy.random.RandomState``."""
    numpy = sys.modules.get("numpy")
    kinds: tuple[type, ...] = (torch.Generator,)
    if numpy is not None:
        kinds += (numpy.random.Generator, numpy.random.RandomState)
    found: dict[int, Any] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, kinds):
                found.setdefault(id(value), value)
    return list(found.values())


def _state(generator: Any) -> Any:
    if isinstance(generator, torch.Generator):
        return generator.get_state()
    if hasattr(generator, "bit_generator"):  # numpy.random.Generator
        return generator.bit_generator.state
    return generator.get_state()  # numpy.random.RandomState


def _set_state(generator: Any, state: Any) -> None:
    if isinstance(generator, torch.Generator):
        generator.set_state(state)
    elif hasattr(generator, "bit_generator"):
        generator.bit_generator.state = state
    else:
        generator.set_state(state)


def _seed_held(generator: Any, seed: int) -> None:
    if isinstance(generator, torch.Generator):
        generator.manual_seed(seed)
    elif hasattr(generator, "bit_generator"):  # a fresh bit generator of its kind, seeded
        generator.bit_generator.state = type(generator.bit_generator)(seed).state
    else:
        generator.seed(seed)


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


__all__ = ["COUNT_SEED", "held_generators", "reseeded_at_first_call", "same_draws"]
