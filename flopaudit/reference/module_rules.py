"""Custom per-module cost rules.

``register_module_rule(ModuleClass, fn)`` makes the reference counter charge
every call of a module of that class (or a subclass; the most specific
registered class wins) ``fn(module, args, output) -> Cost`` instead of the
operators its forward dispatches: those operators are not recorded, and one
event named ``module_rule:<ClassName>`` carries the custom cost.

Registrations are removable: the returned :class:`ModuleRuleHandle` has
``remove()`` and is a context manager, so tests do not leak rules::

    with register_module_rule(MyBlock, lambda m, args, out: Cost(10, 0, Category.MATMUL)):
        result = count(model, x)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from flopaudit.reference.registry import Cost

ModuleRule = Callable[[nn.Module, tuple[Any, ...], Any], Cost]

_RULES: dict[type, ModuleRule] = {}


@dataclass
class ModuleRuleHandle:
    """Handle of one registration; ``remove()`` or use as a context manager."""

    module_class: type
    rule: ModuleRule

    def remove(self) -> None:
        if _RULES.get(self.module_class) is self.rule:
            del _RULES[self.module_class]

    def __enter__(self) -> "ModuleRuleHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def register_module_rule(module_class: type, rule: ModuleRule) -> ModuleRuleHandle:
    """Charge calls of ``module_class`` modules ``rule(module, args, output)``.

    Raises ``ValueError`` if the class already has a rule.
    """
    if not (isinstance(module_class, type) and issubclass(module_class, nn.Module)):
        raise TypeError(f"not an nn.Module class: {module_class!r}")
    if module_class in _RULES:
        raise ValueError(f"a module rule is already registered for {module_class.__qualname__}")
    _RULES[module_class] = rule
    return ModuleRuleHandle(module_class, rule)


def module_rule_for(module: nn.Module) -> ModuleRule | None:
    """The rule of the most specific registered class in ``type(module)``'s MRO."""
    if not _RULES:
        return None
    for cls in type(module).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule
    return None


def registered_module_rules() -> dict[type, ModuleRule]:
    return dict(_RULES)


__all__ = ["ModuleRule", "ModuleRuleHandle", "module_rule_for", "register_module_rule", "registered_module_rules"]
