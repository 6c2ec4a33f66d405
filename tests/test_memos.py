"""Process-wide memos in a model's code (``functools.lru_cache``) are emptied before every count,
so a count does not depend on what ran before it in its process (:mod:`flopaudit.memos`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.memos import empty_memos, model_memos
from flopaudit.reference import count
from flopaudit.zoo import get_case

# The hard case's canonical count: Linear(8, 8) on (1, 16, 8) and its table's (16, 1) x (1, 8) product.
WITH_TABLE = 16 * 8 * 8 + 16 * 8


def _method_memo(maxsize: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator as transformers' ``compile_compatible_method_lru_cache``: the memo lives in its wrapper's closure."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        cached = functools.lru_cache(maxsize=maxsize)(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return cached(*args, **kwargs)

        return wrapper

    return decorator


@functools.lru_cache(maxsize=4)
def _module_level_table(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32)


class _Base(nn.Module):
    @staticmethod
    @functools.lru_cache(maxsize=1)
    def base_table(n: int) -> torch.Tensor:
        return torch.ones(n)


class _Memoising(_Base):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    @_method_memo(maxsize=2)
    def scale(self, n: int) -> torch.Tensor:
        return torch.full((n,), 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        return self.fc(x) * self.scale(n) + self.base_table(n) + _module_level_table(n)


def test_the_memos_of_a_models_code_are_found_where_its_classes_hold_them() -> None:
    """A static method's memo on a base class, a method's memo in a decorator's closure and a memo
    defined in the module of the model's classes are found; torch's own (``nn.Linear``'s module) are not."""
    found = model_memos(nn.Sequential(_Memoising()))
    names = sorted(m.__wrapped__.__qualname__ for m in found)
    assert names == ["_Base.base_table", "_Memoising.scale", "_module_level_table"]
    _Memoising()(torch.randn(2, 4))
    assert all(m.cache_info().currsize for m in found)
    empty_memos(_Memoising())
    assert not any(m.cache_info().currsize for m in found)
    assert model_memos(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) == []


def test_a_reference_count_builds_a_memoised_table_whatever_ran_before() -> None:
    """The first forward of a process builds the table, later ones with the same shape find it: each
    count starts with the memo emptied, so counts made before and after a forward read the same."""
    model, inputs = get_case("process-memoised-table").instantiate()
    first = count(model, inputs).macs
    with torch.no_grad():
        model(*inputs.args)  # leaves the table memoised
    assert first == count(model, inputs).macs == count(model, inputs).macs == WITH_TABLE


@pytest.mark.parametrize("before", ["torchsummary", "fvcore"])
def test_a_backends_count_does_not_depend_on_the_backend_counted_before_it(before: str) -> None:
    """torchsummary runs the model on its own batch of two, fvcore traces it: either leaves another key
    in the table's one-entry memo. torch.flop_counter (which counts the table's product) reads the
    same count alone, after either, and after a plain forward that left the model's own key there."""
    model, inputs = get_case("process-memoised-table").instantiate()
    counter = get_adapter("torch-flop-counter")
    alone = counter.count(model, inputs)
    get_adapter(before).count(model, inputs)
    after = counter.count(model, inputs)
    with torch.no_grad():
        model(*inputs.args)
    warm = counter.count(model, inputs)
    assert alone.macs == after.macs == warm.macs == WITH_TABLE, (alone.macs, after.macs, warm.macs)



@pytest.mark.parametrize("through_helper", [False, True])
def test_a_memo_in_the_projects_helper_module_is_emptied_before_every_count(through_helper: bool) -> None:
    """A memoised table in a helper module the model's module imports (the memo itself, or a function
    calling it): found and emptied, so a count after a forward that left the table there reads the same;
    a memo of an installed module imported the same way (the standard library's fnmatch) is not touched."""
    from fnmatch import _compile_pattern

    from memo_helpers import position_table
    from memo_user_model import HelperTable

    model = HelperTable(through_helper)
    found = model_memos(model)
    assert position_table in found and _compile_pattern not in found
    x = torch.randn(1, 16, 8)
    first = count(model, x).macs
    with torch.no_grad():
        model(x)  # leaves the table memoised
    assert count(model, x).macs == first == 16 * 8 * 8 + 16 * 8
