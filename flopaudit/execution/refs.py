"""A picklable name for a model case, rebuilt identically in any process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flopaudit.zoo.case import ModelCase


@dataclass(frozen=True)
class CaseRef:
    """A model case by name: a zoo id or a ``module:function`` spec, plus input overrides.

    ``input_shape`` / ``inputs_factory`` are what ``--input-shape`` /
    ``--inputs`` gave (``None`` keeps the case's own inputs). A worker
    process resolves the ref exactly as the CLI did, and
    :meth:`ModelCase.instantiate` seeds the build, so every process gets
    the same weights and inputs.
    """

    id: str
    input_shape: tuple[int, ...] | None = None
    inputs_factory: str | None = None

    @property
    def is_spec(self) -> bool:
        """A ``module:function`` spec rather than a zoo id."""
        from flopaudit.callables import is_spec

        return is_spec(self.id)

    def resolve(self) -> ModelCase:
        """The :class:`ModelCase` this ref names (a user error if it names none)."""
        from flopaudit.errors import UserError
        from flopaudit.zoo import get_case
        from flopaudit.zoo.select import resolve_model_spec, select_cases

        if self.is_spec:
            return resolve_model_spec(self.id, self.input_shape, self.inputs_factory)
        if self.input_shape is None and self.inputs_factory is None:
            return get_case(self.id)
        matches = [c for c in select_cases([self.id], input_shape=self.input_shape,
                                           inputs_factory=self.inputs_factory) if c.id == self.id]
        if not matches:  # pragma: no cover - select_cases raises for unknown ids
            raise UserError(f"unknown model {self.id!r}")
        return matches[0]


def ref_for(case: ModelCase | CaseRef) -> CaseRef | None:
    """A :class:`CaseRef` naming ``case``, or ``None`` when it has no name.

    A zoo case is named by its id only when it *is* the registered case
    (not a copy with other inputs); a ``module:function`` case only through
    a :class:`CaseRef` (its inputs are not recorded on the case).
    """
    if isinstance(case, CaseRef):
        return case
    from flopaudit.errors import UserError
    from flopaudit.zoo import get_case

    try:
        registered = get_case(case.id)
    except UserError:
        return None
    return CaseRef(case.id) if registered is case else None
