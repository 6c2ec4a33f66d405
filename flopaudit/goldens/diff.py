"""Comparing a fresh count with its golden, and saying what changed in words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flopaudit.goldens.record import BREAKDOWNS, SCALAR_COUNTS, Golden
from flopaudit.units import human

_SECTION_TITLES = {
    "per_op": "per op",
    "per_module": "per module",
    "unsupported": "unsupported ops",
    "extra": "extra",
    "phases": "per phase",
    "raw_total": "raw total",
    "params": "params",
    "batch_size": "batch size",
}


@dataclass(frozen=True)
class Change:
    """One compared value that differs: ``section`` is a field name, ``key`` an op/module name ("" for scalars)."""

    section: str
    key: str
    old: int | str | None
    new: int | str | None


@dataclass(frozen=True)
class GoldenDiff:
    """The outcome of comparing ``current`` with ``golden``."""

    golden: Golden
    current: Golden
    changes: tuple[Change, ...]
    tolerance: float = 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.changes)

    @property
    def title(self) -> str:
        return f"{self.golden.model} / {self.golden.backend}"

    def notes(self) -> list[str]:
        """Why the counts may differ: versions, options, inputs, unit."""
        g, c = self.golden, self.current
        out: list[str] = []
        if g.backend_version != c.backend_version:
            out.append(
                f"backend version changed (golden {g.backend_version or '?'}, "
                f"installed {c.backend_version or 'not installed'})"
            )
        if g.torch_version != c.torch_version:
            out.append(f"torch version changed (golden {g.torch_version}, installed {c.torch_version})")
        if self.drifted and not out:
            out.append(
                f"count changed at the same version ({g.backend} {g.backend_version or '?'}, torch {g.torch_version})"
            )
        if g.options != c.options:
            out.append(f"options changed (golden {dict(g.options)}, now {dict(c.options)})")
        if g.inputs != c.inputs:
            out.append(f"inputs changed (golden {g.inputs or '?'}, now {c.inputs or '?'})")
        if g.unit != c.unit:
            out.append(f"backend unit changed (golden {g.unit}, now {c.unit})")
        return out

    def headline(self) -> str:
        """``resnet18 / fvcore: total 1.819G -> 1.823G (+0.2%)`` and the like."""
        g, c = self.golden, self.current
        if g.status != c.status:
            line = f"{self.title}: status {g.status} -> {c.status}"
            if c.error:
                line += f" ({c.error})"
            return line
        if not c.ok:
            if g.error != c.error:
                return f"{self.title}: still {c.status}, message changed"
            return f"{self.title}: same ({c.status}: {c.error})"
        if g.macs != c.macs:
            return f"{self.title}: total {_pair(g.macs, c.macs)} ({percent(g.macs, c.macs)})"
        total = f"total {_num(c.macs)}" if c.macs is not None else "no total"
        if self.drifted:
            return f"{self.title}: {total} unchanged, breakdown changed"
        return f"{self.title}: same ({total})"

    def render(self, max_rows: int = 20) -> str:
        """Headline, notes, then one row per changed value, grouped by section."""
        lines = [self.headline()]
        lines += [f"  {n}" for n in self.notes()]
        if not self.drifted:
            return "\n".join(lines)
        by_section: dict[str, list[Change]] = {}
        for ch in self.changes:
            by_section.setdefault(ch.section, []).append(ch)
        if "error" in by_section and self.golden.status == self.current.status:
            ch = by_section["error"][0]
            lines.append(f"  error: {ch.old!r} -> {ch.new!r}")
        scalar_rows = [ch for s in SCALAR_COUNTS if s != "macs" for ch in by_section.get(s, ())]
        if scalar_rows:
            width = max(len(_SECTION_TITLES[ch.section]) for ch in scalar_rows)
            for ch in scalar_rows:
                lines.append(f"  {_SECTION_TITLES[ch.section]:<{width}}  {_pair(ch.old, ch.new)}")  # type: ignore[arg-type]
        for section in BREAKDOWNS:
            rows = by_section.get(section)
            if not rows:
                continue
            rows = sorted(rows, key=lambda ch: (-abs(_delta(ch)), ch.key))
            shown = rows[:max_rows]
            width = min(max(len(ch.key or "<root>") for ch in shown), 60)
            lines.append(f"  {_SECTION_TITLES[section]}:")
            for ch in shown:
                lines.append(f"    {(ch.key or '<root>'):<{width}}  {_pair(ch.old, ch.new)}")  # type: ignore[arg-type]
            if len(rows) > max_rows:
                lines.append(f"    ... and {len(rows) - max_rows} more")
        return "\n".join(lines)


def compare(golden: Golden, current: Golden, tolerance: float = 0.0) -> GoldenDiff:
    """Compare every count of ``current`` with ``golden``.

    With ``tolerance == 0`` integers must be equal. Otherwise a number may
    move by ``tolerance`` times its golden value (``0.01`` = 1 %); a value
    that was 0 or absent must stay 0. Status and the error's first line are
    always compared exactly. A key absent from a breakdown counts as 0.
    Versions, options and inputs are not compared: they are reported as
    notes that explain a change.
    """
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    changes: list[Change] = []
    if golden.status != current.status:
        changes.append(Change("status", "", golden.status, current.status))
    if golden.error != current.error:
        changes.append(Change("error", "", golden.error, current.error))
    for name in SCALAR_COUNTS:
        old, new = getattr(golden, name), getattr(current, name)
        if not _close(old, new, tolerance):
            changes.append(Change(name, "", old, new))
    for name in BREAKDOWNS:
        old_map, new_map = dict(getattr(golden, name)), dict(getattr(current, name))
        for key in sorted(set(old_map) | set(new_map)):
            old, new = old_map.get(key, 0), new_map.get(key, 0)
            if not _close(old, new, tolerance):
                changes.append(Change(name, key, old, new))
    return GoldenDiff(golden, current, tuple(changes), tolerance)


def _close(old: int | None, new: int | None, tolerance: float) -> bool:
    if old == new:
        return True
    if old is None or new is None:
        return False
    return abs(new - old) <= tolerance * abs(old)


def percent(old: int | None, new: int | None) -> str:
    """Relative change as text: ``+0.2%``, ``-50.0%``, ``new`` (from 0), ``?`` (missing)."""
    if old is None or new is None:
        return "?"
    if old == 0:
        return "new" if new else "+0%"
    pct = (new - old) / abs(old) * 100
    if pct == 0:
        return "+0%"
    return f"{pct:+.1f}%" if abs(pct) >= 0.1 else f"{pct:+.2g}%"


def _num(n: int | None) -> str:
    return "-" if n is None else human(n)


def _pair(old: int | str | None, new: int | str | None) -> str:
    """``1.819G -> 1.823G``; exact integers with the difference when the rounded forms look alike."""
    if isinstance(old, str) or isinstance(new, str):
        return f"{old} -> {new}"
    a, b = _num(old), _num(new)
    if a == b and old != new and old is not None and new is not None:
        return f"{old} -> {new} ({new - old:+d})"
    return f"{a} -> {b}"


def _delta(ch: Change) -> int:
    if isinstance(ch.old, int) and isinstance(ch.new, int):
        return ch.new - ch.old
    return 0


def summarize(diffs: Sequence[GoldenDiff]) -> str:
    """``checked 14 goldens: 12 same, 2 drifted``."""
    drifted = sum(d.drifted for d in diffs)
    return f"checked {len(diffs)} golden{'s' if len(diffs) != 1 else ''}: {len(diffs) - drifted} same, {drifted} drifted"
