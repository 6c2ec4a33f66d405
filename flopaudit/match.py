"""Which counter, unit and convention reproduces a published count.

A paper's "4.1 GFLOPs" or "300M MAdds" is one number, and counters disagree
about what such a number counts. :func:`match` takes the counts of one model
from an :class:`~flopaudit.run.AuditRun` (every backend, plus the reference
counter's split of its count by operator category) and enumerates every
number they can mean (:func:`candidates`):

* each backend's count (normalised to MACs), as MACs and as FLOPs (2 per
  multiply-add); for a backend that failed or did not run, what its ruleset
  predicts (the reference's prediction for it);
* conventions built from the reference's ``macs.<category>`` and
  ``extra_flops.<category>`` facts (:func:`~flopaudit.adapters.reference.category_facts`):
  the MACs of any non-empty set of contraction categories (convolutions,
  matmuls, attention products, RNN gates: attention left out, say; attention
  written out as batched products of activations is a category of its own,
  ``activation-products``, taken out of ``matmul``) plus any
  set of the extra work (conv and linear bias, norms, activations, pooling,
  softmax, elementwise ops...), in MAC units (each extra FLOP one unit, as
  counters that add a bias as a MAC do) and in FLOP units (2 per MAC plus
  the extra FLOPs), with eval-mode batch norms computing batch statistics or
  not;
* each of those per batch and, for a batch of several samples, per sample.

Candidates with the same value are one :class:`Match` naming every way to
get it. Matches are ranked by closeness: first those equal to the target at
its written precision when it is written with enough digits to tell
conventions apart (``4.089G`` means 4.0885G to 4.0895G; ``300M`` or ``3.6G``
do not discriminate), then those within ``within`` (1% by default), then the
rest. At equal closeness the simplest comes first (fewest departures from
the canonical count, :meth:`Convention.departures`; a backend's own count
departs by none), then the nearest (a count before a ruleset's prediction):
with some 600 combinations of categories, some land near any figure, and a
figure written with three digits does not say which one it was. Every convention has a
spec (``FLOP:conv,matmul+norm``, ``thop:FLOP/sample``) that
``flopaudit match MODEL --convention SPEC`` evaluates again: the command
that produces the number.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flopaudit.errors import UserError, did_you_mean
from flopaudit.records import CountResult, Unit
from flopaudit.units import human

UNITS = ("MAC", "FLOP")

EXTRA_LABELS = {
    "conv": "conv bias",
    "matmul": "linear bias",
    "attention": "attention softmax and scaling",
    "rnn": "RNN gate arithmetic",
    "norm": "norms",
    "activation": "activations",
    "pool": "pooling",
    "elementwise": "elementwise ops",
    "reduction": "reductions",
    "interpolation": "interpolation",
    "embedding": "embedding lookups",
}
"""How the extra FLOPs of each category read in a convention (bias adds are
the extra FLOPs of ``conv`` and ``matmul``)."""

ACTIVATION_PRODUCTS = "activation-products"
"""Contraction category: the batched products of two activations that the reference finds in ``matmul``
(``activation_product_macs``, :func:`~flopaudit.adapters.reference.category_facts`): attention written out
as ``q @ k.transpose(-2, -1)`` and the weighted values, which a fused kernel counts as ``attention``."""

BATCH_STATISTICS = "batch-statistics"
"""Spec token: eval-mode batch norms priced as if they computed batch statistics."""

_PREFIX = {"K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12}


@dataclass(frozen=True)
class Target:
    """A published figure: its value and the precision it was written with."""

    value: float
    text: str
    precision: float
    """Half a unit of the last significant digit: ``4.089G`` -> 0.0005e9,
    ``300M`` -> 50e6 (an integer's trailing zeros are not significant),
    ``4.100G`` -> 0.0005e9 (a decimal's are)."""

    @property
    def discriminating(self) -> bool:
        """Written precisely enough (to :data:`DISCRIMINATING` of its value) that
        equality at its precision says more than being within the tolerance."""
        return self.precision <= DISCRIMINATING * self.value


DISCRIMINATING = 0.0025
"""Relative precision from which a figure's own digits rank matches (``4.089G``: 0.012%; ``17.6G``: 0.28%, not)."""


def parse_target(text: str) -> Target:
    """``"4.5G"``, ``"300M"``, ``"4.089e9"``, ``"1,814M"``, ``"3.6 GFLOPs"`` (a unit word, FLOPs,
    MACs, MAdds, Mult-Adds or OPs, is ignored: papers use each for either unit, which ``--unit``
    chooses); a :class:`UserError` otherwise."""
    raw = text.strip().replace(",", "").replace("_", "")
    m = re.fullmatch(r"(\d*\.?\d+)(?:[eE]([+-]?\d+))?\s*([kKMGBT]?)\s*(?:(?:flops?|macs?|madds?|mult-?adds?|ops)"
                     r")?", raw, flags=re.IGNORECASE)
    if not m or not float(m.group(1)):
        raise UserError(f"invalid --target {text!r}: expected a positive count such as 4.5G, 300M or 4.1e9")
    mantissa, exponent, prefix = m.group(1), int(m.group(2) or 0), m.group(3).upper()
    scale = _PREFIX.get(prefix, 1.0) * 10.0**exponent
    if "." in mantissa:
        place = 10.0 ** -len(mantissa.split(".")[1])
    else:
        digits = mantissa.lstrip("0")
        place = 10.0 ** (len(digits) - len(digits.rstrip("0")))
    return Target(float(mantissa) * scale, text.strip(), 0.5 * place * scale)


def parse_fraction(text: str, what: str) -> float:
    """``"0.01"`` or ``"1%"`` -> 0.01; a :class:`UserError` unless positive and finite."""
    raw = text.strip()
    try:
        value = float(raw.rstrip("%")) / (100.0 if raw.endswith("%") else 1.0)
    except ValueError:
        raise UserError(f"invalid {what} {text!r}: expected a fraction like 0.01 or 1%") from None
    if not (value > 0 and math.isfinite(value)):
        raise UserError(f"invalid {what} {text!r}: must be positive")
    return value


@dataclass(frozen=True)
class Convention:
    """One way to turn the counts into a number (see the module docstring).

    ``source`` is ``"reference"`` for conventions built from the reference's
    categories (``contractions``: categories whose MACs count, ``extras``:
    categories whose extra FLOPs count, ``batch_statistics``) or a backend's
    name (its count as it stands). ``unit`` is MAC or FLOP (2 per MAC);
    ``per_sample`` divides by the batch size.
    """

    unit: str
    source: str = "reference"
    contractions: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    batch_statistics: bool = False
    per_sample: bool = False

    @property
    def spec(self) -> str:
        """``MAC:conv,matmul``, ``FLOP:conv,matmul+norm,batch-statistics/sample``, ``thop:FLOP``."""
        if self.source != "reference":
            text = f"{self.source}:{self.unit}"
        else:
            extras = [*self.extras, *([BATCH_STATISTICS] if self.batch_statistics else [])]
            text = f"{self.unit}:{','.join(self.contractions)}" + (f"+{','.join(extras)}" if extras else "")
        return text + ("/sample" if self.per_sample else "")

    def value(self, counts: Counts) -> float | None:
        """The number this convention gives on ``counts`` (None if it cannot be had)."""
        if self.source != "reference":
            macs = counts.backends.get(self.source)
            if macs is None:
                return None
            total: float = 2 * macs if self.unit == "FLOP" else macs
        else:
            if any(c not in counts.macs for c in self.contractions) or any(e not in counts.extra for e in self.extras):
                return None
            if self.batch_statistics and not counts.batch_statistics:
                return None
            macs = sum(counts.macs[c] for c in self.contractions)
            extra = sum(counts.extra[e] for e in self.extras) + (counts.batch_statistics if self.batch_statistics else 0)
            total = (2 * macs if self.unit == "FLOP" else macs) + extra
        return total / counts.batch if self.per_sample else total

    def departures(self, counts: Counts) -> int:
        """How far the convention is from a canonical one: contraction
        categories left out, plus extras added to MACs (or, in FLOPs, the
        fewer of extras added and extras left out: 2 x MACs and canonical
        FLOPs are both plain conventions), plus batch statistics. A backend's
        own count departs by 0."""
        if self.source != "reference":
            return 0
        dropped = len(set(counts.macs) - set(self.contractions))
        n = len(self.extras)
        extras = n if self.unit == "MAC" else min(n, len(counts.extra) - n)
        return dropped + extras + int(self.batch_statistics)

    def describe(self, counts: Counts) -> str:
        """The convention in words."""
        per = ", per sample" if self.per_sample else ""
        if self.source != "reference":
            how = counts.how.get(self.source, "")
            native = "FLOP" if self.source in counts.reports_flops else "MAC"
            if self.unit == native:
                unit = f"as it reports ({native}s)"
            else:
                unit = "x 2 as FLOPs" if self.unit == "FLOP" else "halved to MACs"
            return f"{self.source} {unit}{' (' + how + ')' if how else ''}{per}"
        every = set(self.contractions) == set(counts.macs)
        left_out = sorted(set(counts.macs) - set(self.contractions))
        what = "every contraction" if every else f"{', '.join(self.contractions)} only ({', '.join(left_out)} left out)"
        if every and not self.extras and not self.batch_statistics:
            name = "canonical MACs" if self.unit == "MAC" else "2 x canonical MACs"
        elif every and set(self.extras) == set(counts.extra) and self.unit == "FLOP" and not self.batch_statistics:
            name = "canonical FLOPs (2 x MACs + every extra FLOP)"
        else:
            name = ("2 x " if self.unit == "FLOP" else "") + f"MACs of {what}"
            if self.extras:
                name += " + " + ", ".join(EXTRA_LABELS.get(e, e) for e in self.extras)
            if self.batch_statistics:
                name += ", batch norms computing batch statistics"
        return name + per

    @classmethod
    def parse(cls, spec: str, backends: Iterable[str] = ()) -> Convention:
        """Inverse of :attr:`spec`; ``all`` stands for every category present
        when evaluated (:meth:`resolve`). A :class:`UserError` on a bad spec."""
        text = spec.strip()
        per_sample = text.endswith("/sample")
        text = text.removesuffix("/sample")
        head, sep, rest = text.partition(":")
        if not sep:
            raise UserError(f"invalid --convention {spec!r}: expected UNIT:CATEGORIES[+EXTRAS][/sample] "
                            "(e.g. FLOP:conv,matmul+norm) or BACKEND:UNIT (e.g. thop:FLOP)")
        if head.upper() in UNITS:
            contractions, _, extras = rest.partition("+")
            cats = tuple(c.strip() for c in contractions.split(",") if c.strip())
            extra = [e.strip() for e in extras.split(",") if e.strip()]
            if not cats:
                raise UserError(f"invalid --convention {spec!r}: name the contraction categories (or 'all')")
            bs = BATCH_STATISTICS in extra
            return cls(head.upper(), "reference", cats, tuple(e for e in extra if e != BATCH_STATISTICS), bs,
                       per_sample)
        if head == "reference":  # the reference counter's own count: every contraction
            return cls.parse(f"{rest}:all" + ("/sample" if per_sample else ""))
        known = list(backends)
        if known and head not in known:
            raise UserError(f"invalid --convention {spec!r}: unknown backend {head!r}{did_you_mean(head, known)}; "
                            f"valid: {', '.join(known)}")
        if rest.upper() not in UNITS:
            raise UserError(f"invalid --convention {spec!r}: the unit after {head}: must be MAC or FLOP")
        return cls(rest.upper(), head, per_sample=per_sample)

    def resolve(self, counts: Counts) -> Convention:
        """``all`` replaced by the categories present; a :class:`UserError` for an unknown one."""
        if self.source != "reference":
            return self
        cats = tuple(counts.macs) if "all" in self.contractions else self.contractions
        extras = tuple(counts.extra) if "all" in self.extras else self.extras
        for name, have, kind in ((cats, counts.macs, "contraction"), (extras, counts.extra, "extra")):
            missing = [c for c in name if c not in have]
            if missing:
                raise UserError(f"no {kind} category {missing[0]!r} in this model's count; present: "
                                f"{', '.join(have) or 'none'}")
        return replace(self, contractions=cats, extras=extras)


@dataclass(frozen=True)
class Counts:
    """What :func:`candidates` works from, read off one model's results."""

    model: str
    batch: int
    macs: dict[str, int]
    """Canonical MACs per contraction category (nonzero ones)."""
    extra: dict[str, int]
    """Extra FLOPs per category (nonzero ones)."""
    batch_statistics: int = 0
    backends: dict[str, int] = field(default_factory=dict)
    """Each backend's count in whole-batch MACs (the reference's canonical one included)."""
    how: dict[str, str] = field(default_factory=dict)
    """Notes on backends' numbers (a FLOP count halved, a prediction)."""
    predicted: frozenset[str] = frozenset()
    """Backends whose number is their ruleset's prediction (they failed or did not run)."""
    reports_flops: frozenset[str] = frozenset()
    """Backends whose own number is in FLOPs (normalised here by halving)."""
    inputs: str = ""

    @classmethod
    def from_results(cls, model: str, results: Sequence[CountResult], inputs: str = "") -> Counts:
        reference = next((r for r in results if r.backend == "reference"), None)
        if reference is None or not reference.ok or reference.macs is None:
            why = (reference.error or reference.status.value).splitlines()[0] if reference is not None else "not run"
            raise UserError(f"cannot match {model}: the reference counter gave no count ({why})")
        facts = dict(reference.extra)
        macs = {k.split(".", 1)[1]: v for k, v in facts.items() if k.startswith("macs.") and v}
        extra = {k.split(".", 1)[1]: v for k, v in facts.items()
                 if k.startswith("extra_flops.") and v and k != "extra_flops.batch_statistics"}
        products = facts.get("activation_product_macs", 0)
        if products and macs.get("matmul", 0) >= products:  # eager attention: a category of its own
            macs["matmul"] -= products
            macs = {k: v for k, v in macs.items() if v}
            macs[ACTIVATION_PRODUCTS] = products
        if not macs:
            macs = {"all": reference.macs}  # results written before the category facts existed
        backends: dict[str, int] = {}
        how: dict[str, str] = {}
        ran = {r.backend: r for r in results}
        for r in results:
            if r.ok and r.macs is not None:
                backends[r.backend] = r.macs
        predicted = set()
        for p in reference.predictions:
            if p.ruleset not in backends:
                r = ran.get(p.ruleset)
                backends[p.ruleset] = p.macs
                predicted.add(p.ruleset)
                how[p.ruleset] = "predicted by its ruleset: " + (
                    f"its count ended in {r.status.value}" if r is not None else "not run")
        flops = frozenset(r.backend for r in results if r.unit is Unit.FLOP)
        return cls(model, reference.batch_size or 1, macs, extra, facts.get("extra_flops.batch_statistics", 0),
                   backends, how, frozenset(predicted), flops, inputs)


def candidates(counts: Counts, units: Sequence[str] = UNITS) -> list[Convention]:
    """Every convention the counts allow (see the module docstring)."""
    out: list[Convention] = []
    pers = (False, True) if counts.batch > 1 else (False,)
    cats, extras = sorted(counts.macs), sorted(counts.extra)
    for unit, per in itertools.product(units, pers):
        for backend in counts.backends:
            if backend != "reference":  # its count is the canonical MACs, below
                out.append(Convention(unit, backend, per_sample=per))
        for k in range(1, len(cats) + 1):
            for chosen in itertools.combinations(cats, k):
                for j in range(len(extras) + 1):
                    for added in itertools.combinations(extras, j):
                        out.append(Convention(unit, "reference", chosen, added, False, per))
                        if counts.batch_statistics and "norm" in added:
                            out.append(Convention(unit, "reference", chosen, added, True, per))
    return out


@dataclass(frozen=True)
class Match:
    """One value and every convention that gives it, simplest first."""

    value: float
    conventions: tuple[Convention, ...]
    error: float
    """``value / target - 1``."""
    closeness: int
    """0: equal to the target at its written precision, when that is
    discriminating (:attr:`Target.discriminating`); 1: within the tolerance; 2: further."""
    departures: int
    predicted: bool = False
    """Its simplest convention is a backend's prediction, not a count."""

    @property
    def best(self) -> Convention:
        return self.conventions[0]


@dataclass(frozen=True)
class MatchResult:
    """The ranked matches of a target, and what the search covered."""

    counts: Counts
    target: Target
    units: tuple[str, ...]
    within: float
    matches: tuple[Match, ...]
    searched: int
    """How many conventions were tried."""

    @property
    def found(self) -> tuple[Match, ...]:
        return tuple(m for m in self.matches if m.closeness < 2)


def match(counts: Counts, target: Target, units: Sequence[str] = UNITS, within: float = 0.01) -> MatchResult:
    """Rank every convention's value by closeness to ``target`` (module docstring)."""
    groups: dict[float, list[Convention]] = {}
    tried = candidates(counts, units)
    for conv in tried:
        value = conv.value(counts)
        if value is None:
            continue
        groups.setdefault(round(value, 3), []).append(conv)
    matches = []
    for value, convs in groups.items():
        convs.sort(key=lambda c: (c.departures(counts), c.source in counts.predicted, c.source != "reference", c.spec))
        error = value / target.value - 1
        if target.discriminating and abs(value - target.value) <= target.precision:
            closeness = 0
        elif abs(error) <= within:
            closeness = 1
        else:
            closeness = 2
        best = convs[0]
        matches.append(Match(value, tuple(convs), error, closeness, best.departures(counts),
                             best.source in counts.predicted))
    matches.sort(key=lambda m: (m.closeness, m.departures if m.closeness < 2 else 0, abs(m.error), m.predicted,
                                m.best.spec))
    return MatchResult(counts, target, tuple(units), within, tuple(matches), len(tried))


# --- what a near miss says -------------------------------------------------------------------------------------


def missing(result: MatchResult) -> list[str]:
    """When nothing is within the tolerance: the closest value, the canonical
    counts in the units searched, what is missing, and what the gap looks like
    (per batch vs per sample, MAC vs FLOP, above or below every convention,
    an input size that would fit a convnet)."""
    if not result.matches:
        return ["no convention could be evaluated"]
    target, counts = result.target.value, result.counts
    closest = min(result.matches, key=lambda m: abs(m.error))
    gap = target - closest.value
    unit = closest.best.unit
    canonical = sum(counts.macs.values())
    lines = [f"closest: {_human(closest.value)} {unit} ({_signed_pct(closest.error)}), "
             f"{closest.best.describe(counts)}",
             f"missing: {'+' if gap > 0 else '-'}{_human(abs(gap))} {unit} "
             f"({abs(gap) / target:.1%} of the target) that no counter or convention here accounts for",
             "canonical: " + ", ".join(f"{_human(canonical * (2 if u == 'FLOP' else 1))} {u}s "
                                       f"({_signed_pct(canonical * (2 if u == 'FLOP' else 1) / target - 1)})"
                                       for u in result.units)]
    values = [m.value for m in result.matches]
    ratio = target / closest.value if closest.value else math.inf
    times = round(ratio) if ratio >= 1 else round(1 / ratio)
    if times >= 3 and _near(ratio if ratio >= 1 else 1 / ratio, times, 0.01):
        per = "batch" if closest.best.per_sample is False else "sample"
        if ratio > 1:
            lines.append(f"the target is {times} x this count (per {per} of {counts.batch}): was it counted on "
                         f"{times} x as many samples? (--input-shape with another batch size)")
        else:
            lines.append(f"the target is 1/{times} of this count (per {per} of {counts.batch}): was it counted on "
                         f"1/{times} as many samples?")
    if len(result.units) == 1 and (_near(ratio, 2) or _near(ratio, 0.5)):
        other = "FLOP" if result.units[0] == "MAC" else "MAC"
        lines.append(f"the gap is a factor of 2: try --unit {other} (or auto)")
    if target > max(values):
        lines.append(f"the target is above every convention (largest {_human(max(values))}): the figure counts "
                     "work this model does not do on these inputs (larger inputs, a training step, another "
                     "variant of the architecture)")
    elif target < min(values):
        lines.append(f"the target is below every convention (smallest {_human(min(values))}): the figure counts "
                     "less work (smaller inputs, a pruned or smaller variant, only some layers)")
    side = _image_side(counts.inputs)
    if side:
        for u in result.units:
            scale = target / (canonical * (2 if u == "FLOP" else 1))
            if 0.25 < scale < 4 and not _near(scale, 1, 0.01):
                f = math.sqrt(scale)
                lines.append(f"inputs: a convnet's count grows with height x width; canonical {u}s would reach "
                             f"the target at about {round(side[0] * f)}x{round(side[1] * f)} instead of "
                             f"{side[0]}x{side[1]} (--input-shape)")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _near(x: float, y: float, rel: float = 0.02) -> bool:
    return abs(x / y - 1) <= rel


def _image_side(inputs: str) -> tuple[int, int] | None:
    """``(1x3x224x224)`` -> (224, 224): the spatial size of a single 4-D image input."""
    m = re.fullmatch(r"\((\d+)x(\d+)x(\d+)x(\d+)\)", inputs.strip())
    return (int(m.group(3)), int(m.group(4))) if m else None


def _human(x: float) -> str:
    return human(int(round(x))) if abs(x) >= 1000 or float(x).is_integer() else f"{x:.3f}"


def _signed_pct(x: float) -> str:
    from flopaudit.reports.verdict import percent

    return percent(x, True) if x else "0%"


# --- rendering ----------------------------------------------------------------------------------------------------


def render(result: MatchResult, model_args: Sequence[str], top: int = 10) -> str:
    """The ranked table, with the command that gives each value, and a near miss
    explained. ``model_args``: the model and its input options as given
    (``["resnet50"]``, ``["pkg:build", "--input-shape", "1,3,224,224"]``)."""
    import shlex

    from flopaudit.table import format_table

    counts, target = result.counts, result.target
    units = " or ".join(result.units)
    lines = [f"{counts.model}, inputs {counts.inputs or '?'} (batch {counts.batch}): target {target.text} "
             f"= {_human(target.value)} +/- {_human(target.precision)} as written, unit {units}",
             f"searched {result.searched} conventions over {_plural(len(counts.backends) - len(counts.predicted), 'count')}"
             + (f" and {_plural(len(counts.predicted), 'ruleset prediction')}" if counts.predicted else "")
             + f"; {len(result.found)} value(s) within {result.within:.0%}:"]
    rows = []
    shown = result.matches[:top]
    for k, m in enumerate(shown, 1):
        others = [c for c in m.conventions[1:] if c.source != "reference"]
        how = m.best.describe(counts)
        if others:
            how += "; also " + ", ".join(c.describe(counts) for c in others[:4])
            if len(others) > 4:
                how += f" and {len(others) - 4} more"
        mark = {0: "= target", 1: "within"}.get(m.closeness, "")
        rows.append([str(k), _human(m.value), _signed_pct(m.error), mark, m.best.unit,
                     "sample" if m.best.per_sample else "batch", how])
    lines.append(format_table(["#", "value", "vs target", "", "unit", "per", "convention"], rows,
                              align="rrrllll"))
    if len(result.matches) > top:
        lines.append(f"... and {len(result.matches) - top} more values (--top N shows more)")
    model, options = model_args[0], list(model_args[1:])
    lines += ["", "reproduce:"]
    for k, m in enumerate(shown[:3], 1):
        lines.append(f"  #{k}: " + shlex.join(["flopaudit", "match", model, *options, "--convention", m.best.spec]))
        counted = next((c for c in m.conventions if c.source != "reference" and c.source not in counts.predicted),
                       None)
        if counted is not None:
            run = shlex.join(["flopaudit", "run", "--models", model, *options, "--backends", counted.source])
            native = "FLOP" if counted.source in counts.reports_flops else "MAC"
            scale = "" if counted.unit == "MAC" else ", x 2 for FLOPs"  # run's table shows MACs
            lines.append(f"      or {run}" + scale + (f", / {counts.batch} per sample" if counted.per_sample else "")
                         + (f" ({counted.source} itself reports {native}s)" if native == "FLOP" else ""))
    if not result.found:
        lines += ["", f"nothing within {result.within:.0%} of {target.text}:"]
        lines += [f"  {line}" for line in missing(result)]
    return "\n".join(lines)


def describe_value(conv: Convention, counts: Counts, target: Target | None = None) -> str:
    """``--convention SPEC``: the value of one convention, in words."""
    value = conv.value(counts)
    if value is None:
        raise UserError(f"convention {conv.spec!r} cannot be evaluated on {counts.model}")
    text = f"{counts.model}: {_human(value)} {conv.unit} ({value:.0f}) = {conv.describe(counts)} [{conv.spec}]"
    if target is not None:
        text += f"; {_signed_pct(value / target.value - 1)} from the target {target.text}"
    return text


def counts_for(run: Any, model: str) -> Counts:
    """:class:`Counts` of ``model`` in ``run`` (an :class:`~flopaudit.run.AuditRun`)."""
    results = [r for r in run.results if r.model == model]
    info = run.case(model)
    return Counts.from_results(model, results, info.inputs if info else "")


def evaluate(spec: str, counts: Counts) -> Convention:
    """Parse and resolve a ``--convention`` spec against ``counts``."""
    conv = Convention.parse(spec, counts.backends).resolve(counts)
    return conv


__all__ = [
    "BATCH_STATISTICS", "Convention", "Counts", "EXTRA_LABELS", "Match", "MatchResult", "Target", "UNITS",
    "candidates", "counts_for", "describe_value", "evaluate", "match", "missing", "parse_fraction", "parse_target",
    "render",
]
