"""The golden record: one (model, backend) count frozen for regression checks.

A golden holds integers only (counts are never pre-scaled), so two goldens
compare exactly and a changed count shows up as a one-line diff in version
control. The JSON form is written with sorted keys and indent 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from flopaudit.passes import Pass
from flopaudit.records import Breakdown, CountResult, Status, breakdown

SCHEMA = "flopaudit.golden"
"""The ``schema`` value of one golden record."""
SET_SCHEMA = "flopaudit.golden-set"
"""The ``schema`` value of a file holding several records (written by the pytest plugin)."""
SCHEMA_VERSION = 1

SCALAR_COUNTS = ("macs", "raw_total", "params", "batch_size")
"""Integer fields compared between a golden and a fresh count (``macs`` first: it is "the total")."""
BREAKDOWNS = ("per_op", "per_module", "unsupported", "extra", "phases")
"""Name -> integer mappings compared key by key (``phases``: a training step's MACs per phase)."""


class GoldenError(ValueError):
    """A golden that cannot be read: invalid JSON, wrong schema, wrong field types."""


@dataclass(frozen=True)
class Golden:
    """One backend's count of one model, as stored in a golden file.

    ``macs`` is the total normalised to multiply-accumulates for the whole
    batch; ``raw_total`` is the backend's own number rounded to an integer
    (``NB:`` a backend reporting a fractional total, e.g. a per-sample
    average, loses its fraction here). ``input_shape``/``inputs_factory``
    record how the inputs were chosen when they were not the zoo's own, so
    that ``flopaudit check`` rebuilds the same case. A failed count keeps
    its ``status`` and the first line of its ``error`` and no counts. A
    training step's golden records its pass in ``options`` (``pass``,
    ``loss``, ``optimizer``) and its MACs per phase in ``phases``; an
    inference golden has neither.
    """

    model: str
    backend: str
    backend_distribution: str
    backend_version: str
    torch_version: str
    unit: str
    status: str
    inputs: str = ""
    input_shape: tuple[int, ...] | None = None
    inputs_factory: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    macs: int | None = None
    raw_total: int | None = None
    params: int | None = None
    batch_size: int | None = None
    per_op: Breakdown = ()
    per_module: Breakdown = ()
    unsupported: Breakdown = ()
    extra: Breakdown = ()
    phases: Breakdown = ()

    @property
    def ok(self) -> bool:
        return self.status == Status.OK.value

    @property
    def pass_(self) -> Pass:
        """The pass the golden was counted in (from its options; inference when they say none)."""
        return Pass.from_options(self.options)

    @classmethod
    def from_result(
        cls,
        result: CountResult,
        *,
        inputs: str = "",
        input_shape: tuple[int, ...] | None = None,
        inputs_factory: str | None = None,
        distribution: str | None = None,
    ) -> Golden:
        """Freeze a :class:`~flopaudit.records.CountResult` (warnings, timings and side effects dropped)."""
        ok = result.status is Status.OK
        return cls(
            model=result.model,
            backend=result.backend,
            backend_distribution=distribution if distribution is not None else _distribution(result.backend),
            backend_version=result.backend_version,
            torch_version=result.torch_version,
            unit=result.unit.value,
            status=result.status.value,
            inputs=inputs,
            input_shape=tuple(input_shape) if input_shape else None,
            inputs_factory=inputs_factory,
            options=tuple(sorted((str(k), str(v)) for k, v in result.options)),
            error=None if ok else first_line(result.error),
            macs=_int(result.macs) if ok else None,
            raw_total=_int(result.raw_total) if ok else None,
            params=_int(result.params) if ok else None,
            batch_size=_int(result.batch_size),
            per_op=result.per_op if ok else (),
            per_module=result.per_module if ok else (),
            unsupported=result.unsupported if ok else (),
            extra=result.extra if ok else (),
            phases=breakdown({p.phase: p.macs for p in result.phases}) if ok else (),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk (schema name and version included)."""
        out: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "phases" and not value:
                continue  # an inference golden reads as it always has
            if f.name in BREAKDOWNS or f.name == "options":
                value = dict(value)
            elif f.name == "input_shape" and value is not None:
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Golden:
        """Validate and read one record; raise :class:`GoldenError` saying what is wrong."""
        if not isinstance(data, Mapping):
            raise GoldenError(f"expected a JSON object, found {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise GoldenError(f"not a flopaudit golden (schema is {data.get('schema')!r}, expected {SCHEMA!r})")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise GoldenError(f"invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise GoldenError(f"golden schema version {version} is newer than this flopaudit reads ({SCHEMA_VERSION})")
        names = {f.name for f in fields(cls)}
        body = {k: v for k, v in data.items() if k not in ("schema", "schema_version")}
        unknown = sorted(set(body) - names)
        if unknown:
            raise GoldenError(f"unknown field(s) {', '.join(unknown)}")
        required = [f.name for f in fields(cls) if f.name not in _OPTIONAL]
        missing = [n for n in required if n not in body]
        if missing:
            raise GoldenError(f"missing field(s) {', '.join(missing)}")
        kwargs: dict[str, Any] = {}
        for name, value in body.items():
            kwargs[name] = _check_field(name, value)
        return cls(**kwargs)


_OPTIONAL = {
    "inputs", "input_shape", "inputs_factory", "options", "error", "macs", "raw_total", "params",
    "batch_size", "per_op", "per_module", "unsupported", "extra", "phases",
}
_STRINGS = {"model", "backend", "backend_distribution", "backend_version", "torch_version", "unit", "status", "inputs"}


def _check_field(name: str, value: Any) -> Any:
    if name in _STRINGS:
        if not isinstance(value, str):
            raise GoldenError(f"field {name!r} must be a string, found {value!r}")
        if name == "status" and value not in {s.value for s in Status}:
            raise GoldenError(f"field 'status' must be one of {', '.join(s.value for s in Status)}, found {value!r}")
        return value
    if name in ("error", "inputs_factory"):
        if value is not None and not isinstance(value, str):
            raise GoldenError(f"field {name!r} must be a string or null, found {value!r}")
        return value
    if name in SCALAR_COUNTS:
        if value is not None and not _is_int(value):
            raise GoldenError(f"field {name!r} must be an integer or null, found {value!r}")
        return value
    if name == "input_shape":
        if value is None:
            return None
        if not isinstance(value, list) or not all(_is_int(v) and v > 0 for v in value):
            raise GoldenError(f"field 'input_shape' must be a list of positive integers or null, found {value!r}")
        return tuple(value)
    if name == "options":
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise GoldenError(f"field 'options' must be an object of strings, found {value!r}")
        return tuple(sorted(value.items()))
    # a breakdown
    if not isinstance(value, Mapping):
        raise GoldenError(f"field {name!r} must be an object of integers, found {type(value).__name__}")
    bad = [k for k, v in value.items() if not _is_int(v)]
    if bad:
        raise GoldenError(f"field {name!r} must hold integers only; {bad[0]!r} is {value[bad[0]]!r}")
    return breakdown(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: int | float | None) -> int | None:
    return None if value is None else int(round(value))


def first_line(text: str | None) -> str | None:
    """The first non-empty line of ``text`` (what a golden keeps of an error)."""
    if not text:
        return None
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return None


def _distribution(backend: str) -> str:
    try:
        from flopaudit.adapters import get_backend

        return get_backend(backend).distribution or "flopaudit"
    except Exception:  # noqa: BLE001 - an adapter that cannot load still gets a golden
        return backend
