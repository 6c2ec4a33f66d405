"""Choosing cases by id, glob and tag; turning ``module:function`` into a case."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from flopaudit.callables import load_callable
from flopaudit.errors import UserError, batch_statistics_hint, first_line, integer_inputs_hint, placement_hint
from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase, tensor_inputs


def select_cases(
    patterns: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    *,
    full: bool = False,
    input_shape: tuple[int, ...] | None = None,
    inputs_factory: str | None = None,
    shard: tuple[int, int] | None = None,
) -> list[ModelCase]:
    """Pick cases by the rules of :func:`flopaudit.zoo.catalog.select`, from the zoo's code.

    ``patterns`` are case ids, globs (``resnet*``) or ``module:function``
    specs; ``tags`` keep only cases carrying every tag. With neither, the
    default zoo is chosen, or every case with ``full=True``.
    ``shard=(i, n)`` keeps the i-th of n deterministic parts (1-based).
    An input override replaces each chosen case's inputs.
    """
    from flopaudit.zoo import all_cases
    from flopaudit.zoo.catalog import entry_of, select

    registry = {c.id: c for c in all_cases()}
    selection = select(patterns, tags, full=full, shard=shard, catalog=[entry_of(c) for c in registry.values()])
    chosen: list[ModelCase] = []
    for entry in selection.entries:
        if isinstance(entry, str):
            chosen.append(resolve_model_spec(entry, input_shape, inputs_factory))
        else:
            chosen.append(_with_inputs(registry[entry.id], input_shape, inputs_factory))
    return chosen


def _with_inputs(case: ModelCase, shape: tuple[int, ...] | None, factory: str | None) -> ModelCase:
    import dataclasses

    make = _inputs_maker(shape, factory)
    if make is None:
        return case
    return dataclasses.replace(case, make_inputs=make, expected_macs=None)


def _inputs_maker(shape: tuple[int, ...] | None, factory: str | None) -> Callable[[], ModelInputs] | None:
    if factory:
        fn = load_callable(factory, what="inputs factory")

        def make() -> ModelInputs:
            value = fn()
            if value is None:  # (a function that forgot its return)
                raise UserError(f"inputs factory {factory!r} returned None: return a tensor, a tuple of "
                                "positional arguments or a dict of keyword arguments")
            return ModelInputs.coerce(value)

        return make
    if shape:
        return tensor_inputs(*shape)
    return None


def resolve_model_spec(
    spec: str, input_shape: tuple[int, ...] | None = None, inputs_factory: str | None = None
) -> ModelCase:
    """A case for ``module:function`` (the function returns an ``nn.Module``)."""
    fn = load_callable(spec)
    make = _inputs_maker(input_shape, inputs_factory)
    if make is None:
        raise UserError(f"model {spec!r} needs --input-shape (e.g. 1,3,224,224) or --inputs module:function")

    def build() -> nn.Module:
        model = fn()
        if not isinstance(model, nn.Module):
            raise UserError(f"model {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
        return model

    return ModelCase(id=spec, build=build, make_inputs=make, tags=frozenset({"user"}))


def check_runs(case: ModelCase, model: nn.Module, inputs: ModelInputs, *, meta: bool = False,
               placed: tuple[str, str] = ("cpu", "float32")) -> None:
    """Run one forward pass; a model that rejects its inputs is a user error (``placed``: the device and
    dtype ``--device``/``--dtype`` put it in, which the error names where they are not the default).

    On the meta device a forward that reads a tensor's value (``.item()``,
    ``.tolist()``, a data-dependent branch) or makes a tensor on the CPU fails
    whatever the inputs: the error says so instead of blaming the inputs; any
    other failure there says it may be the input or a meta kernel.
    """
    from flopaudit.grad_forward import without_grad_if_it_runs

    def run(no_grad: bool) -> None:
        given = inputs.fresh()  # (a second try starts from the inputs as given)
        with torch.no_grad() if no_grad else torch.enable_grad():
            model(*given.args, **given.kwargs)

    try:
        without_grad_if_it_runs(run)  # (a forward that differentiates runs with autograd on)
    except Exception as exc:  # noqa: BLE001
        msg = first_line(exc) or type(exc).__name__
        if meta:
            from flopaudit.execution.meta import meta_failure

            raise UserError(f"model {case.id!r}{meta_failure(exc, inputs.describe())}") from exc
        raise UserError(f"model {case.id!r} rejected input {inputs.describe()}: {type(exc).__name__}: {msg}"
                        f"{batch_statistics_hint(exc)}{integer_inputs_hint(exc)}{placement_hint(*placed)}") from None


def iter_ids(cases: Iterable[ModelCase]) -> list[str]:
    return [c.id for c in cases]
