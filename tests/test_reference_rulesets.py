"""Rulesets: the same recorded events priced under different conventions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flopaudit.reference import EventRule, ModuleRule, Ruleset, apply_ruleset, count, get_ruleset
from flopaudit.reference.pricing import predict
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import register_ruleset


class ConvLinear(nn.Module):
    """conv (3->4, k3, bias) + BN + ReLU + flatten + linear (4*6*6 -> 5, bias) + bmm in the root."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(self.act(self.bn(self.conv(x))).flatten(1))
        return torch.bmm(y.unsqueeze(2), y.unsqueeze(1))


BATCH = 2
CONV = BATCH * 4 * 6 * 6 * 3 * 3 * 3
FC = BATCH * 4 * 6 * 6 * 5
BMM = BATCH * 5 * 1 * 5


@pytest.fixture
def result():
    return count(ConvLinear().eval(), torch.randn(BATCH, 3, 8, 8))


def test_canonical_rulesets(result) -> None:
    assert result.ruleset.ruleset == "canonical" and result.ruleset.unit == "FLOP"
    assert result.ruleset.total == result.flops == 2 * (CONV + FC + BMM) + result.extra_flops
    macs = apply_ruleset(result, "canonical-macs")
    assert (macs.total, macs.unit) == (CONV + FC + BMM, "MAC")
    assert macs.per_module == {"": CONV + FC + BMM, "conv": CONV, "fc": FC}


def test_torchvision_ruleset_counts_conv_and_matmul_macs_only(result) -> None:
    tv = apply_ruleset(result, "torchvision")
    assert tv.total == CONV + FC + BMM  # no bias, no BN/ReLU
    assert set(tv.per_category) == {"conv", "matmul"}
    assert count(ConvLinear().eval(), torch.randn(BATCH, 3, 8, 8), ruleset="torchvision").ruleset.total == tv.total


def test_transposed_conv_by_input_or_output() -> None:
    model = nn.ConvTranspose2d(4, 6, 3, stride=2)
    result = count(model, torch.randn(1, 4, 5, 5))
    by_output = Ruleset("test-conv-by-output", "MAC", "transposed conv priced on its output",
                        event_rules=(EventRule("conv_by_output", category=Category.CONV),))
    assert apply_ruleset(result, "torchvision").total == 4 * 5 * 5 * 6 * 3 * 3  # by input
    assert apply_ruleset(result, by_output).total == 6 * 11 * 11 * 4 * 3 * 3  # output 11x11


def test_event_rules_first_match_wins(result) -> None:
    rs = Ruleset(
        "test-rules", "MAC", "addmm with its bias, convs without, ReLU as numel, rest ignored",
        event_rules=(
            EventRule("macs+extra", op="aten.addmm"),
            EventRule("macs", category=Category.CONV),
            EventRule("out_numel", module_type="ReLU", in_leaf=True),
        ),
    )
    assert apply_ruleset(result, rs).total == (FC + BATCH * 5) + CONV + BATCH * 4 * 6 * 6


def test_module_rules_replace_inner_events(result) -> None:
    """A hook-style ruleset: Linear priced as in_features * numel(out), nothing functional."""
    rs = Ruleset("test-hooks", "MAC", "thop-like", module_rules=(ModuleRule("Linear", "out_numel"),),
                 default="zero")
    totals = apply_ruleset(result, rs)
    assert totals.total == BATCH * 5
    assert totals.per_op == {"module:Linear": BATCH * 5}
    assert totals.per_module == {"": BATCH * 5, "fc": BATCH * 5}
    # not suppressing: the module count and the inner addmm MACs both count
    both = Ruleset("test-hooks-both", "MAC", "x", module_rules=(ModuleRule("Linear", "out_numel", False),),
                   default="macs")
    assert apply_ruleset(result, both).total == BATCH * 5 + CONV + FC + BMM
    # a dotted class path matches too
    dotted = Ruleset("test-dotted", "MAC", "x", module_rules=(ModuleRule("torch.nn.modules.linear.Linear",
                                                                         "in_numel"),))
    assert apply_ruleset(result, dotted).total == BATCH * 4 * 6 * 6


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_nested_module_rules_outermost_suppressing_rule_wins() -> None:
    result = count(Outer(), torch.randn(3, 4))
    rs = Ruleset("test-nested", "MAC", "x", module_rules=(ModuleRule("Sequential", "in_numel"),
                                                          ModuleRule("Linear", "out_numel")))
    assert apply_ruleset(result, rs).total == 3 * 4  # the Linears inside the Sequential are not visited


class CallsPassedModule(nn.Module):
    """A leaf module (``caller``) that calls a sibling passed to it, as peft's DoRA layer calls ``lora_A``."""

    class Caller(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x: torch.Tensor, other: nn.Module) -> torch.Tensor:
            return other(x * self.scale) @ torch.ones(6, 2)

    def __init__(self) -> None:
        super().__init__()
        self.sibling = nn.Linear(4, 6)
        self.caller = self.Caller()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.caller(x, self.sibling)


def test_a_module_called_inside_a_priced_module_it_does_not_belong_to_is_priced_on_its_own() -> None:
    result = count(CallsPassedModule(), torch.randn(3, 4))
    rs = Ruleset("test-passed", "MAC", "x", module_rules=(ModuleRule("*", "out_numel", in_leaf=True),))
    # the caller's output (3 x 2) and the sibling's (3 x 6): a hook counter sums both calls
    assert apply_ruleset(result, rs).total == 3 * 2 + 3 * 6
    p = predict(result.events, result.module_call_records, rs)
    assert p.macs == 3 * 2 + 3 * 6
    assert p.macs == result.macs + sum(c.macs for c in p.contributions)  # the sibling's events are its own


def test_per_sample_divides_by_batch(result) -> None:
    rs = Ruleset("test-per-sample", "MAC", "x", default="macs", per_sample=True)
    assert apply_ruleset(result, rs).total == (CONV + FC + BMM) // BATCH


def test_ruleset_validation() -> None:
    with pytest.raises(ValueError, match="unknown counters"):
        Ruleset("bad", "MAC", "x", event_rules=(EventRule("no-such-counter"),))
    with pytest.raises(ValueError, match="already registered"):
        register_ruleset(get_ruleset("canonical"))
    with pytest.raises(ValueError, match="unknown ruleset"):
        get_ruleset("nope")


def test_bare_events_cannot_feed_module_rules(result) -> None:
    rs = Ruleset("test-mod", "MAC", "x", module_rules=(ModuleRule("Linear", "out_numel"),))
    with pytest.raises(ValueError, match="module rules"):
        apply_ruleset(result.events, rs)
    assert apply_ruleset(result.events, "canonical-macs").total == CONV + FC + BMM


class _Holder(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(x)


class ThreeParents(nn.Module):
    """One bias-free Linear(4, 4) under three parents, called from one of them;
    plus one Linear assigned twice to the root (one name: children() skips it)."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(4, 4, bias=False)
        self.a, self.b, self.c = _Holder(shared), _Holder(shared), _Holder(shared)
        self.twice = self.again = nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.again(self.twice(self.a(x)))


@pytest.mark.parametrize(
    ("hooks", "sums", "factor"),
    [(False, False, 1), (True, False, 3), (False, True, 3), (True, True, 9)],
    ids=["per-call", "hooks-per-name", "sums-per-name", "both"],
)
def test_shared_module_counted_per_name(hooks: bool, sums: bool, factor: int) -> None:
    from flopaudit.reference.pricing import predict

    result = count(ThreeParents(), torch.randn(2, 4))
    calls = result.module_call_records
    shared = next(c for c in calls if c.path == "a.shared")
    assert shared.names == ("a.shared", "b.shared", "c.shared")
    assert next(c for c in calls if c.path == "twice").names == ("twice",)
    rs = Ruleset(f"test-names-{hooks}-{sums}", "MAC", "x", module_rules=(ModuleRule("Linear", "in_numel"),),
                 hooks_per_name=hooks, sums_per_name=sums)
    # in_numel = 2 x 4 = 8 per call: the shared Linear runs once, the twice-assigned one twice under one name
    totals = apply_ruleset(result, rs)
    assert totals.total == 8 * factor + 2 * 8
    assert totals.per_module.get("c.shared", 0) == (8 * (3 if hooks else 1) if sums else 0)
    prediction = predict(result.events, calls, rs)
    assert prediction.macs == totals.total
    reused = [c for c in prediction.contributions if c.kind == "reused-module"]
    assert sum(c.macs for c in reused) == 8 * (factor - 1)
    canonical = 3 * (2 * 4 * 4)  # three Linear(4, 4) calls on (2, 4)
    assert prediction.macs == canonical + sum(c.macs for c in prediction.contributions)


@pytest.mark.parametrize("case_id", ["lstm-bidir-2layer", "mha-batch-first", "sparse-delta-weight", "resnet18"])
def test_the_rule_finder_finds_what_event_rule_finds(case_id: str) -> None:
    """A pass over a recording matches each ruleset's rules once per :meth:`EventRule.key`; what it finds
    for every event is what matching that event against the rules finds."""
    import importlib

    from flopaudit.adapters import backends
    from flopaudit.reference.rulesets import RULESETS
    from flopaudit.zoo import get_case

    for backend in backends().values():
        if backend.ruleset:
            importlib.import_module(backend.ruleset)
    model, inputs = get_case(case_id).instantiate()
    checked = 0
    for rs in RULESETS.values():
        if not rs.event_rules:
            continue
        events = count(model, inputs, ruleset=rs).events
        find = rs.rule_finder()
        assert [find(e) for e in events] == [rs.event_rule(e) for e in events], rs.name
        checked += 1
    assert checked >= 10
