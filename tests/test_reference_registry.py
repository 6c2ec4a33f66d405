"""The formula registry: keys, lookup, binding, Cost."""

from __future__ import annotations

import pytest
import torch

from flopaudit.reference.registry import (
    Category,
    Cost,
    bind,
    lookup,
    op_key,
    register_formula,
    registered,
    temporary_formula,
    unregister_formula,
)

aten = torch.ops.aten


def test_cost_flops_and_validation() -> None:
    assert Cost(10, 3, Category.MATMUL).flops == 2 * 10 + 3
    with pytest.raises(ValueError):
        Cost(-1, 0, Category.MATMUL)


def test_op_keys() -> None:
    assert op_key(aten.mm) == "aten.mm"
    assert op_key(aten.mm.default) == "aten.mm.default"
    assert op_key("mylib::myop") == "mylib.myop"


def test_overload_key_wins_over_packet() -> None:
    def special(call) -> Cost:
        """Test formula for one overload only."""
        return Cost(1, 0, Category.MATMUL)

    with temporary_formula("aten.mm.out", special):
        assert lookup(aten.mm.out) is special
        assert lookup(aten.mm.default) is registered()["aten.mm"]
    assert "aten.mm.out" not in registered()


def test_register_rejects_duplicates_atomically() -> None:
    with pytest.raises(ValueError, match="aten.mm"):
        register_formula("flopaudit_test_registry.fresh", aten.mm)(lambda call: Cost(0, 0, Category.MATMUL))
    assert "flopaudit_test_registry.fresh" not in registered()
    with pytest.raises(KeyError):
        unregister_formula("flopaudit_test_registry.never")


def test_bind_fills_defaults_and_keyword_only() -> None:
    params = bind(aten._scaled_dot_product_flash_attention_for_cpu.default, ("q", "k", "v"), {"scale": 0.5})
    assert params == {"query": "q", "key": "k", "value": "v", "dropout_p": 0.0, "is_causal": False,
                      "attn_mask": None, "scale": 0.5}


def test_every_aten_key_names_an_existing_operator() -> None:
    for key in registered():
        ns, _, rest = key.partition(".")
        if ns != "aten":
            continue
        name = rest.split(".")[0]
        assert hasattr(aten, name), key
