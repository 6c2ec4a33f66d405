"""Verdicts: which counter to use for each model, and why not the others.

The canonical count is the reference counter's MACs (contractions, whole
batch, bias excluded; see :mod:`flopaudit.reference`). For each model
(:func:`model_verdict`):

* counters whose normalised count equals it are ``exact``, counters within
  ``tolerance`` of it (relative, default :data:`DEFAULT_TOLERANCE` = 1%) are
  ``close``; both are recommended, exact ones first, each with the
  conversion its raw number needs (a FLOP counter halved, a per-sample one
  multiplied by the batch size), derived from the raw and normalised totals;
* every other counter gets one sentence: its largest cause and that cause's
  share of the canonical count. Counters whose largest cause is the same
  rule share a sentence ("thop, ptflops-pytorch and torchinfo miss 86%: no
  rule for EinsumLayer modules"); where the whole difference is not that one
  cause the sentence adds each counter's total. A failed count says how it
  failed; a cell that no ruleset explains says how much is unexplained.

Across models, :func:`family_recommendations` puts each model in a family
(:func:`family_of`: zoo tags first, else what the reference counted) and
ranks the counters of each family by evidence (:func:`rank_key`): on how
many models they give the canonical count (exactly or within the
tolerance), then exactly, then fewest failures and unexplained cells, then
the smallest median and worst deviation, whose model and cause are named.
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flopaudit.records import CountResult
from flopaudit.reports.model import (
    BackendEvidence,
    Cause,
    CellExplanation,
    FamilyRecommendation,
    Finding,
    ModelVerdict,
    Report,
)
from flopaudit.units import human

DEFAULT_TOLERANCE = 0.01
"""Relative distance from the canonical count that a verdict still calls "within"."""

FAMILIES = ("convnets", "transformers", "RNNs", "custom layers", "MLPs and other layers")
UNKNOWN_FAMILY = "family unknown: not counted"
"""The family of a model without zoo tags that the reference did not count (it failed to build or run):
nothing says what it is made of, and it is in no family's recommendation."""
"""Model families, in the order the scorecard lists them."""

FAMILY_TAGS: tuple[tuple[str, frozenset[str]], ...] = (
    ("custom layers", frozenset({"custom", "autograd-function", "torch-library"})),
    ("RNNs", frozenset({"rnn", "lstm", "gru"})),
    ("transformers", frozenset({"attention", "transformer", "mha", "sdpa", "vit", "swin", "maxvit", "nlp"})),
    ("convnets", frozenset({"conv"})),
)
"""Zoo tags that decide a family, checked in this order (a custom layer in an
RNN is a custom-layer model). The library tags (``transformers``, ``timm``)
decide none: transformers builds convnets too (its ResNet, ConvNeXt)."""

CONVNET_CONV_SHARE = 0.05
"""Share of a model's MACs in convolutions from which it counts as a convnet."""

NO_RULE_PREFIX = "no rule for "
"""How the rulesets name a layer a hook-based counter has no rule for
(:func:`flopaudit.reference.pricing.no_rule`)."""

_OP_WORDS = (("attention", ("attention",)), ("rnn", ("lstm", "gru", "rnn")), ("conv", ("conv",)))
"""Operator-name words standing for categories in results without ``macs.<category>`` facts."""

_FAILED = {"error": "fails", "timeout": "times out", "not applicable": "does not apply"}


# --- numbers as words -------------------------------------------------------------------------------------------


def percent(x: float, signed: bool = False) -> str:
    """``0.857 -> '86%'``, ``0.0412 -> '4.1%'``, ``0.0055 -> '0.55%'``; tiny values as ``<0.01%``."""
    a = abs(x) * 100
    if a == 0:
        text = "0%"
    elif a < 0.01:
        text = "<0.01%"
    elif a < 1:
        text = f"{a:.2f}%"
    elif a < 10:
        text = f"{a:.1f}".removesuffix(".0") + "%"
    else:
        text = f"{a:.0f}%"
    if signed and a:
        text = ("+" if x > 0 else "-") + text
    return text


def names(items: Sequence[str]) -> str:
    """``['a'] -> 'a'``, ``['a', 'b', 'c'] -> 'a, b and c'``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _either(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# --- one cell ---------------------------------------------------------------------------------------------------


def deviation(cell: CellExplanation) -> float | None:
    """``count / canonical - 1`` (None when either is missing or the canonical count is 0)."""
    return None if cell.ratio is None else cell.ratio - 1


def largest_cause(cell: CellExplanation) -> Cause | None:
    return max(cell.causes, key=lambda c: (abs(c.macs), c.kind, c.rule)) if cell.causes else None


def share(macs: int, cell: CellExplanation) -> float:
    """``macs`` as a signed share of the canonical count."""
    return macs / cell.reference_macs if cell.reference_macs else 0.0


def conversion(result: CountResult | None) -> str | None:
    """What turns the backend's raw number into the canonical unit, when it is not
    the same number: derived from ``raw_total`` and the normalised ``macs``."""
    if result is None or result.raw_total is None or not result.macs or result.raw_total == result.macs:
        return None
    raw, macs, batch = result.raw_total, result.macs, result.batch_size or 1
    if abs(raw - 2 * macs) <= 1:
        return "reports FLOPs: halve it"
    if batch > 1 and abs(raw * batch - macs) <= batch:
        return f"counts per sample: multiply by the batch size {batch}"
    return f"raw {human(raw)} {result.unit.value}"


def is_exact(cell: CellExplanation) -> bool:
    return cell.status == "ok" and cell.difference == 0


def is_close(cell: CellExplanation, tolerance: float) -> bool:
    """Within ``tolerance`` of the canonical count (relative; compared in integers)."""
    diff = cell.difference
    return cell.status == "ok" and diff is not None and abs(diff) <= tolerance * (cell.reference_macs or 0)


def cell_verdict(cell: CellExplanation, tolerance: float = DEFAULT_TOLERANCE,
                 result: CountResult | None = None) -> str:
    """One cell's verdict in a few words (the DataFrame's and CSV's ``verdict``)."""
    if cell.status != "ok":
        return f"{_FAILED.get(cell.status, cell.status)}: {cell.error or cell.status}"
    if cell.reference_macs is None:
        return "no verdict: the reference counter gave no canonical count"
    if cell.classification == "no MACs":
        return _parameters_text(cell)
    how = conversion(result)
    suffix = f" ({how})" if how else ""
    if is_exact(cell):
        return "canonical count exactly" + suffix
    if is_close(cell, tolerance):
        return f"within {percent(tolerance)} of the canonical count ({percent(deviation(cell) or 0.0, True)}){suffix}"
    return _deviation_text(cell)


def _parameters_text(cell: CellExplanation) -> str:
    """A counter of parameters only: how its parameter count compares."""
    params = cell.params
    if params is None:
        return "counts no MACs"
    if params.difference == 0:
        return "counts no MACs; its parameter count equals the reference's"
    if params.residual:
        return f"counts no MACs; its parameter count differs by {params.difference:+,}, unexplained"
    return f"counts no MACs; its parameter count differs by {params.difference:+,}, explained"


def _deviation_text(cell: CellExplanation) -> str:
    dev = deviation(cell)
    if dev is not None:
        total = percent(dev, True)
    elif cell.backend_macs is not None and cell.reference_macs == 0:  # (no share of a canonical count of 0)
        total = f"{human(cell.backend_macs)} MACs where the reference counts 0"
    else:
        total = "?"
    if cell.classification == "unexplained":
        rest = (f"{percent(share(cell.residual, cell))} unexplained" if cell.reference_macs
                else f"{human(abs(cell.residual))} MACs unexplained")
        known = largest_cause(cell)
        if known is not None and abs(known.macs) > abs(cell.residual):
            rest += f"; largest known cause {percent(share(known.macs, cell), True)}: {known.rule}"
        return f"reads {total}: {rest}"
    cause = largest_cause(cell)
    if cause is None:
        return f"reads {total}: no ruleset explains it"
    text = f"{'misses' if cause.macs < 0 else 'adds'} {percent(share(cause.macs, cell))}: {cause.rule}"
    if _total_differs(cell, cause):
        text += f" (in all {total})"
    return text


def _total_differs(cell: CellExplanation, cause: Cause) -> bool:
    """Does the cell's total deviation differ from its largest cause's share enough to be said too:
    by a tenth of the share, or by a percentage point (a counter reading 7% of the count because it
    misses 99.6% and adds 6.6% back "misses 100%", in all -93%)?"""
    dev, part = deviation(cell) or 0.0, share(cause.macs, cell)
    return abs(dev - part) > max(0.0005, min(0.1 * abs(part), 0.01))


def causes_text(cell: CellExplanation) -> str:
    """Every cause with its signed share, largest first (the DataFrame's ``causes``)."""
    parts = [f"{c.kind}: {c.rule} ({percent(share(c.macs, cell), True)})" for c in cell.causes]
    if cell.residual and cell.predicted_macs is not None:
        parts.append(f"unexplained residual ({percent(share(cell.residual, cell), True)})")
    if cell.status != "ok" and cell.error:
        parts.append(f"{cell.status}: {cell.error}")
    return "; ".join(parts)


# --- one model --------------------------------------------------------------------------------------------------


def family_of(tags: Iterable[str], reference: CountResult | None, cells: Sequence[CellExplanation] = ()) -> str:
    """A model's family: from its zoo tags (:data:`FAMILY_TAGS`), else from what
    the reference counted (``macs.<category>`` facts): any RNN MACs make an RNN,
    any attention products a transformer (a fused attention kernel's, or attention
    written out as products of activations: ``activation_product_macs``); a layer some counter has no rule for
    carrying at least 1% of the work makes custom layers; convolutions holding
    :data:`CONVNET_CONV_SHARE` of the MACs or more a convnet (ConvNeXt's
    pointwise layers are Linear: its convolutions hold 7% of its MACs, an
    MLP-Mixer's patch embedding under 2%); anything else is "MLPs and other
    layers". A model without tags that the reference did not count is of
    :data:`UNKNOWN_FAMILY`."""
    tagset = set(tags)
    for family, wanted in FAMILY_TAGS:
        if tagset & wanted:
            return family
    if reference is None or not reference.ok:
        return UNKNOWN_FAMILY
    facts = dict(reference.extra)
    macs = {k.split(".", 1)[1]: v for k, v in facts.items() if k.startswith("macs.")}
    if not macs:  # results written before the facts existed
        for op, n in reference.per_op:
            kind = next((k for k, words in _OP_WORDS if any(w in op for w in words)), "other")
            macs[kind] = macs.get(kind, 0) + n
    total = sum(macs.values())
    if macs.get("rnn"):
        return "RNNs"
    if macs.get("attention") or facts.get("activation_product_macs"):
        return "transformers"
    if any(c.kind == "unsupported" and c.rule.startswith(NO_RULE_PREFIX) and abs(share(c.macs, cell)) >= 0.01
           for cell in cells for c in cell.causes):
        return "custom layers"
    if total and macs.get("conv", 0) >= CONVNET_CONV_SHARE * total:
        return "convnets"
    return "MLPs and other layers"


def model_verdict(model: str, cells: Sequence[CellExplanation], results: Mapping[str, CountResult],
                  tags: Iterable[str] = (), tolerance: float = DEFAULT_TOLERANCE,
                  model_error: str | None = None) -> ModelVerdict:
    """The verdict for one model from its explained cells (see the module docstring).

    ``results`` maps backend -> result (for unit conversions and the reference);
    ``model_error``: the model itself failed to build or run (every cell says so), said once.
    """
    reference = results.get("reference")
    family = family_of(tags, reference, cells)
    ref_macs = reference.macs if reference is not None and reference.ok else None
    base = dict(model=model, family=family, reference_macs=ref_macs, tolerance=tolerance)
    if model_error:
        return _with_headline(ModelVerdict(error=model_error.strip().splitlines()[0], **base))
    if ref_macs is None:
        why = (reference.error or reference.status.value).strip().splitlines()[0] if reference is not None else ""
        error = f"the reference counter {'failed: ' + why if why else 'did not run'}"
        v = ModelVerdict(error=error, findings=_failures(cells), **base)
        return _with_headline(v)
    exact = tuple(c.backend for c in cells if is_exact(c))
    close = tuple(sorted(((c.backend, c.ratio or 0.0) for c in cells if is_close(c, tolerance) and not is_exact(c)),
                         key=lambda bc: (abs(bc[1] - 1), bc[0])))
    usable = set(exact) | {b for b, _ in close}
    conversions = tuple((b, how) for b in (*exact, *(b for b, _ in close))
                        if (how := conversion(results.get(b))))
    deviating = [c for c in cells if c.status == "ok" and c.backend not in usable and c.classification != "no MACs"]
    findings = (_deviation_findings(deviating) + _parameter_only(cells) + _failures(cells) + _reference_notes(reference)
                + _counter_notes(results, reference))
    unpriced = tuple(sorted(dict(reference.unsupported).items())) if reference is not None else ()
    return _with_headline(ModelVerdict(exact=exact, close=close, findings=findings, conversions=conversions,
                                       unpriced=unpriced, **base))


NOTE = "note"
"""The kind of a finding that repeats what the reference said of its own count (no backward pass
where nothing trains, a model counted in its traced branch on meta)."""


def _reference_notes(reference: CountResult | None) -> tuple[Finding, ...]:
    """The reference's notes on its own count (:attr:`~flopaudit.records.CountResult.notes`), as
    findings (``Note: ...``); what it printed or warned is not among them."""
    if reference is None:
        return ()
    return tuple(Finding(("reference",), NOTE, f"Note: {w.rstrip('.')}") for w in reference.notes)


def _counter_notes(results: Mapping[str, CountResult], reference: CountResult | None) -> tuple[Finding, ...]:
    """The notes other counters' results carry that the reference's does not (on meta: where a
    counter sees other kernels than on the CPU, and so counts what it misses there), one finding per
    note naming the counters."""
    said = set(reference.notes) if reference is not None else set()
    by_note: dict[str, list[str]] = {}
    for backend, r in results.items():
        if backend != "reference" and r.ok:
            for note in r.notes:
                if note not in said:
                    by_note.setdefault(note, []).append(backend)
    return tuple(Finding(tuple(backends), NOTE, f"Note on {names(backends)}: {note.rstrip('.')}")
                 for note, backends in by_note.items())


def _deviation_findings(cells: Sequence[CellExplanation]) -> tuple[Finding, ...]:
    groups: dict[tuple[str, str, bool], list[CellExplanation]] = {}
    singles: list[tuple[CellExplanation, str]] = []
    for cell in cells:
        cause = largest_cause(cell)
        if cell.classification == "unexplained" or cause is None:
            singles.append((cell, "unexplained" if cell.classification == "unexplained" else "no ruleset"))
            continue
        groups.setdefault((cause.kind, cause.rule, cause.macs < 0), []).append(cell)
    out: list[tuple[float, Finding]] = []
    for (kind, rule, missing), members in groups.items():
        shares = [share(largest_cause(c).macs, c) for c in members]  # type: ignore[union-attr]
        by_amount: dict[str, list[str]] = {}
        for c, part in sorted(zip(members, shares), key=lambda cs: -abs(cs[1])):
            by_amount.setdefault(percent(part), []).append(c.backend)
        plural = len(members) > 1
        first, *rest = by_amount.items()
        verb = ("miss" if missing else "add") + ("" if len(first[1]) > 1 else "es" if missing else "s")
        text = f"{names(first[1])} {verb} {first[0]}" + "".join(f", {names(b)} {a}" for a, b in rest) + f": {rule}"
        totals = [c for c in members if _total_differs(c, largest_cause(c))]  # type: ignore[arg-type]
        if totals:
            text += " (in all " + ", ".join(
                (f"{c.backend} " if plural else "") + percent(deviation(c) or 0.0, True) for c in totals) + ")"
        worst = max(abs(deviation(c) or 0.0) for c in members)
        out.append((worst, Finding(tuple(c.backend for c in members), kind, text, max(shares, key=abs))))
    for cell, kind in singles:
        out.append((abs(deviation(cell) or 0.0), Finding((cell.backend,), kind, f"{cell.backend} {_deviation_text(cell)}",
                                                         deviation(cell))))
    out.sort(key=lambda wf: (-wf[0], wf[1].backends))
    return tuple(f for _, f in out)


def _parameter_only(cells: Sequence[CellExplanation]) -> tuple[Finding, ...]:
    """Counters of parameters only (no MACs), grouped by what their parameter count says."""
    groups: dict[str, list[str]] = {}
    for cell in cells:
        if cell.status == "ok" and cell.classification == "no MACs":
            groups.setdefault(_parameters_text(cell), []).append(cell.backend)
    return tuple(Finding(tuple(backends), "no MACs", f"{names(backends)} {'count' if len(backends) > 1 else 'counts'}"
                         f"{text.removeprefix('counts')}") for text, backends in groups.items())


def _failures(cells: Sequence[CellExplanation]) -> tuple[Finding, ...]:
    return tuple(Finding((c.backend,), c.status, f"{c.backend} {_FAILED.get(c.status, c.status)}: "
                         f"{_short(c.error or c.status)}") for c in cells if c.status != "ok")


def _short(text: str, limit: int = 160) -> str:
    """``text`` on one line, cut at a word to at most ``limit`` characters (with an ellipsis)."""
    from flopaudit.text import cut_at_word

    return cut_at_word(" ".join(text.split()), limit, " …")


def _with_headline(v: ModelVerdict) -> ModelVerdict:
    import dataclasses

    return dataclasses.replace(v, headline=headline(v))


def headline(v: ModelVerdict) -> str:
    """Which counters to use for the model, in one sentence."""
    tol = percent(v.tolerance)
    if v.error:
        return f"{v.model}: no verdict, {v.error}"
    canonical = f"{v.model} (canonical {human(v.reference_macs)} MACs)"
    conv = dict(v.conversions)

    def label(b: str, ratio: float | None = None) -> str:
        bits = [percent(ratio - 1, True)] if ratio is not None else []
        bits += [conv[b]] if b in conv else []
        return b + (f" ({'; '.join(bits)})" if bits else "")

    gap = ""
    if v.unpriced:
        ops = ", ".join(f"{op} x{n}" for op, n in v.unpriced[:3]) + (", ..." if len(v.unpriced) > 3 else "")
        gap = f" (the reference prices no {ops}: a counter that agrees with it misses that work too)"
    if v.exact:
        text = f"{canonical}: use {_either([label(b) for b in v.exact])}, exact"
        if v.close:
            text += f"; or within {tol}: {_either([label(b, r) for b, r in v.close])}"
        return text + gap
    if v.close:
        return f"{canonical}: use {_either([label(b, r) for b, r in v.close])}, within {tol}; none is exact" + gap
    return f"{canonical}: no counter is within {tol}; use flopaudit's reference counter" + gap


# --- across models ----------------------------------------------------------------------------------------------


def model_verdicts(report: Report, tolerance: float = DEFAULT_TOLERANCE) -> tuple[ModelVerdict, ...]:
    """One verdict per model of ``report``, in the report's order."""
    run = report.run
    out = []
    for model in report.models:
        cells = [c for c in report.cells if c.model == model]
        results = {r.backend: r for r in run.results if r.model == model}
        info = run.case(model)
        out.append(model_verdict(model, cells, results, info.tags if info else (), tolerance,
                                 info.error if info else None))
    return tuple(out)


def rank_key(e: BackendEvidence) -> tuple[Any, ...]:
    """Counters giving the canonical count on the most models first, then exactly
    on the most, then fewest failures and unexplained cells, then the smallest
    median and worst deviation, then the name."""
    worst = abs(e.worst[1]) if e.worst else 0.0
    mad = e.median_abs_deviation if e.median_abs_deviation is not None else float("inf")
    return (-e.usable, -e.exact, e.failed, e.unexplained, mad, worst, e.backend)


def backend_evidence(backend: str, cells: Sequence[CellExplanation], tolerance: float) -> BackendEvidence:
    """How ``backend`` did over ``cells`` (its cells on one family's models)."""
    ok = [c for c in cells if c.status == "ok" and c.ratio is not None]
    devs = [(c, deviation(c) or 0.0) for c in ok]
    worst = None
    if devs:
        cell, dev = max(devs, key=lambda cd: (abs(cd[1]), cd[0].model))
        if not is_close(cell, tolerance):
            cause = largest_cause(cell)
            worst = (cell.model, dev, cause.rule if cause else "not explained")
    return BackendEvidence(
        backend=backend,
        models=len(cells),
        exact=sum(is_exact(c) for c in cells),
        close=sum(is_close(c, tolerance) and not is_exact(c) for c in cells),
        failed=sum(c.status != "ok" for c in cells),
        unexplained=sum(c.classification == "unexplained" for c in cells),
        median_abs_deviation=statistics.median(abs(d) for _, d in devs) if devs else None,
        worst=worst,
        failures=tuple(c.model for c in cells if c.status != "ok"),
        not_applicable=tuple(c.model for c in cells if c.status == "not applicable"),
    )


def family_recommendations(report: Report, verdicts: Sequence[ModelVerdict],
                           tolerance: float = DEFAULT_TOLERANCE) -> tuple[FamilyRecommendation, ...]:
    """For each family with models: every counter ranked by :func:`rank_key`."""
    backends = [b for b in report.backends if b != "reference"]
    out = []
    for family in FAMILIES:
        models = tuple(v.model for v in verdicts if v.family == family and v.reference_macs is not None)
        if not models or not backends:
            continue
        ranking = sorted((backend_evidence(b, [c for c in report.cells if c.backend == b and c.model in models],
                                           tolerance) for b in backends), key=rank_key)
        best: tuple[str, ...] = ()
        if ranking and ranking[0].usable:
            top = rank_key(ranking[0])[:4]
            best = tuple(e.backend for e in ranking if rank_key(e)[:4] == top)
        out.append(FamilyRecommendation(family, models, tuple(ranking), tolerance, best))
    return tuple(out)


def evidence_text(e: BackendEvidence, tolerance: float) -> str:
    """``exact on 4/4 models; worst: convnext_tiny -93%: <cause>`` and the like."""
    n = e.models
    if e.usable and e.exact == e.usable:
        parts = [f"exact on {e.exact}/{n}"]
    elif e.usable:
        parts = [f"within {percent(tolerance)} on {e.usable}/{n}" + (f" ({e.exact} exact)" if e.exact else "")]
    else:
        parts = [f"within {percent(tolerance)} on 0/{n}"]
    failed = [m for m in e.failures if m not in e.not_applicable]
    if failed:
        parts.append(f"fails on {len(failed)} ({_listed(failed, 3)})")
    if e.not_applicable:
        parts.append(f"does not apply to {len(e.not_applicable)} ({_listed(e.not_applicable, 3)})")
    if e.unexplained:
        parts.append(f"{e.unexplained} unexplained")
    if e.worst:
        parts.append(f"worst {e.worst[0]} {percent(e.worst[1], True)}: {e.worst[2]}")
    return "; ".join(parts)


def recommendation_text(f: FamilyRecommendation) -> str:
    """``convnets (4 models): use torch-flop-counter (exact on 4/4)``."""
    head = f"{f.family} ({len(f.models)} model{'s' if len(f.models) != 1 else ''})"
    if not f.best:
        return f"{head}: no counter gives the canonical count within {percent(f.tolerance)} on any model; " \
               "use flopaudit's reference counter"
    top = f.ranking[0]
    return f"{head}: use {_either(list(f.best))} ({evidence_text(top, f.tolerance).split('; ')[0]})"


def _listed(items: Sequence[str], limit: int) -> str:
    """``a, b, c and 4 more``: a cut-off list that says how many more."""
    items = list(items)
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


# --- the CLI table's footer -------------------------------------------------------------------------------------


FOOTER_WIDTH = 120
"""The widest the footer's lines are wrapped to."""


def footer(report: Report, width: int = FOOTER_WIDTH) -> str:
    """Verdict lines per model, the family recommendations and the cell counts,
    for the terminal under the model x backend table."""
    from collections import Counter

    from flopaudit.reports.model import CLASSIFICATIONS

    lines: list[str] = []
    if report.verdicts and report.cells:
        lines.append(f"verdict (canonical = flopaudit's reference count; within = {percent(report.verdict_tolerance)}):")
        # A counter failing the same way on several models (not installed, not applicable to such
        # inputs) is said once, after the models, not in each one's paragraph.
        failures = Counter(f for v in report.verdicts for f in v.findings if f.kind in _FAILED or f.kind == NOTE)
        shared = {f: n for f, n in failures.items() if n > 1}
        for v in report.verdicts:
            text = " ".join([v.headline + "."] + [f.text + "." for f in v.findings if f not in shared])
            lines += textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="      ")
        for f, n in shared.items():
            lines += textwrap.wrap(f"on {n} models: {f.text}.", width, initial_indent="  ",
                                   subsequent_indent="      ")
        if report.families:
            lines.append("by family:")
            for f in report.families:
                lines += textwrap.wrap(recommendation_text(f), width, initial_indent="  ", subsequent_indent="      ")
        lines.append("")
    counts = Counter(c.classification for c in report.cells)
    parts = [f"{name} {counts[name]}" for name in CLASSIFICATIONS if counts[name]]
    if parts:
        lines += textwrap.wrap("cells: " + ", ".join(parts) + ". Causes per cell: report.md, or "
                               "'flopaudit explain MODEL --backend BACKEND'.", width, subsequent_indent="    ")
    else:
        lines.append("cells: none to compare (only the reference counter ran).")
    return "\n".join(lines)
