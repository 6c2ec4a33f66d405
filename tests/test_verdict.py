"""Verdicts: which counter to use for each model, why not the others, and a
ranked recommendation per model family; the DataFrame's judgement columns
and the per-layer table."""

from __future__ import annotations

import pytest
import torch

from flopaudit.records import (
    AuditRun,
    CaseInfo,
    CountResult,
    RuleContribution,
    RulesetPrediction,
    Status,
    Unit,
    breakdown,
)
from flopaudit.reports import build_report
from flopaudit.reports.model import CellExplanation
from flopaudit.reports.verdict import (
    cell_verdict,
    family_of,
    footer,
    percent,
)
from flopaudit.run import audit_model
from tests.user_models import einsum_net

REF = 1_000_000


def _r(model: str, backend: str, macs: int | None, status: Status = Status.OK, **kw: object) -> CountResult:
    return CountResult(model=model, backend=backend, backend_version="1", torch_version="2",
                       unit=kw.pop("unit", Unit.MAC), status=status, macs=macs,  # type: ignore[arg-type]
                       raw_total=kw.pop("raw", macs), **kw)  # type: ignore[arg-type]


def test_percent() -> None:
    assert [percent(x) for x in (0.857, 0.0412, 0.0055, 0.00001, 0.01, 0, 1.5)] == [
        "86%", "4.1%", "0.55%", "<0.01%", "1%", "0%", "150%"]
    assert percent(-0.0412, True) == "-4.1%" and percent(0.2, True) == "+20%"


# --- the example, counted ------------------------------------------------------------------------------


def test_counters_missing_the_same_custom_layer_share_one_sentence() -> None:
    """Linear(16, 16) then an einsum layer with 6x its work: thop, ptflops-pytorch
    and torchinfo have no rule for it and miss 1536 / 1792 = 86% of the count."""
    run = audit_model(einsum_net(), torch.randn(4, 16), isolate=False)
    v = build_report(run).verdict("model")
    assert v is not None
    assert "thop, ptflops-pytorch and torchinfo miss 86%: no rule for EinsumLayer modules" in [
        f.text for f in v.findings]
    # the counters of aten ops see the einsum's products: 4*16*16 + 6 * 4*16*16 = 7168 MACs
    assert v.exact == ("ptflops-aten", "torch-flop-counter", "torchprofile", "torch-profiler")
    assert [b for b, _ in v.close] == ["fvcore"]  # +1 MAC: einsum priced by numpy's path estimate
    assert dict(v.conversions) == {"torch-flop-counter": "reports FLOPs: halve it",
                                   "torch-profiler": "reports FLOPs: halve it"}
    assert v.family == "custom layers"  # no tags: a layer with no rule carries 86% of the work
    assert v.headline == ("model (canonical 7.168K MACs): use ptflops-aten, torch-flop-counter (reports FLOPs: "
                          "halve it), torchprofile or torch-profiler (reports FLOPs: halve it), exact; "
                          "or within 1%: fvcore (+0.01%)")
    # counters of parameters only are no deviation: their finding compares parameters
    # (torchsummary counts what leaf modules hold, the Linear's 256, not the EinsumLayer's 16 x 96 = 1536)
    texts = [f.text for f in v.findings]
    assert "pytorch-model-summary counts no MACs; its parameter count equals the reference's" in texts
    assert "torchsummary counts no MACs; its parameter count differs by -1,536, explained" in texts


# --- one model, by hand ----------------------------------------------------------------------------------------


def _model_run() -> AuditRun:
    bn = RuleContribution("BatchNorm = 2 per element", "rule", 20_000, (("bn", 20_000),))
    relu = RuleContribution("ReLU counted", "rule", 5_000, (("act", 5_000),))
    attn = RuleContribution("SDPA has no formula", "unsupported", -100_000, (("attn", -100_000),))
    ref = _r("m", "reference", REF, batch_size=2, extra=breakdown({"macs.conv": 900_000, "macs.attention": 100_000}),
             predictions=(
                 RulesetPrediction("thop", REF + 25_000, (bn, relu)),
                 RulesetPrediction("ptflops-pytorch", REF + 20_000, (bn,)),
                 RulesetPrediction("fvcore", REF - 100_000, (attn,)),
                 RulesetPrediction("torch-flop-counter", REF - 100_000, (attn,)),
                 RulesetPrediction("ptflops-aten", REF + 4_000, (relu,)),
             ))
    return AuditRun((
        ref,
        _r("m", "thop", REF + 25_000),
        _r("m", "ptflops-pytorch", REF + 20_000, raw=(REF + 20_000) // 2, batch_size=2),
        _r("m", "fvcore", REF - 100_000),
        _r("m", "torch-flop-counter", REF - 100_000, unit=Unit.FLOP, raw=2 * (REF - 100_000)),
        _r("m", "ptflops-aten", REF + 4_000),
        _r("m", "torchinfo", None, Status.TIMEOUT, error="no result after 5 s; the count was stopped"),
    ), (CaseInfo("m", ("conv",), "(2x3x8x8)", 2),))


def test_verdict_by_hand() -> None:
    report = build_report(_model_run())
    v = report.verdict("m")
    assert v is not None and v.family == "convnets"  # the 'conv' tag decides
    assert v.exact == () and v.close == (("ptflops-aten", 1.004),)
    assert [f.text for f in v.findings] == [
        # largest deviation first; the two that miss the attention products share a sentence
        "fvcore and torch-flop-counter miss 10%: SDPA has no formula",
        "thop and ptflops-pytorch add 2%: BatchNorm = 2 per element (in all thop +2.5%)",
        "torchinfo times out: no result after 5 s; the count was stopped",
    ]
    assert v.headline == "m (canonical 1.000M MACs): use ptflops-aten (+0.40%), within 1%; none is exact"


def test_cell_verdicts() -> None:
    report = build_report(_model_run())
    run = report.run

    def verdict(backend: str) -> str:
        cell = report.cell("m", backend)
        assert cell is not None
        return cell_verdict(cell, 0.01, run.result("m", backend))

    assert verdict("ptflops-aten") == "within 1% of the canonical count (+0.40%)"
    assert verdict("fvcore") == "misses 10%: SDPA has no formula"
    assert verdict("thop") == "adds 2%: BatchNorm = 2 per element (in all +2.5%)"
    assert verdict("torchinfo") == "times out: no result after 5 s; the count was stopped"
    tight = build_report(_model_run(), verdict_tolerance=0.05).cell("m", "thop")
    assert tight is not None and cell_verdict(tight, 0.05, run.result("m", "thop")) == (
        "within 5% of the canonical count (+2.5%)")


def test_a_total_a_point_or_more_from_the_largest_cause_is_said_too() -> None:
    """A counter that misses 99.6% of the count and adds 6.6% back reads 7%: "misses 100%" alone
    would read as a count of 0. A total within a tenth of the cause's share is not repeated."""
    missed = RuleContribution("functional convolutions outside leaf modules", "missed-functional", -996_000,
                              (("conv", -996_000),))
    bn = RuleContribution("BatchNorm = 2 per element", "rule", 66_000, (("bn", 66_000),))
    small = RuleContribution("BatchNorm = 2 per element", "rule", 20_000, (("bn", 20_000),))
    ref = _r("m", "reference", REF, predictions=(RulesetPrediction("thop", 70_000, (missed, bn)),
                                                 RulesetPrediction("fvcore", REF + 21_000, (small,))))
    results = {"thop": _r("m", "thop", 70_000), "fvcore": _r("m", "fvcore", REF + 21_000)}
    report = build_report(AuditRun((ref, *results.values()), (CaseInfo("m", ("conv",), "(1x3x8x8)", 1),)))

    def verdict(backend: str) -> str:
        cell = report.cell("m", backend)
        assert cell is not None
        return cell_verdict(cell, 0.01, results[backend])

    assert verdict("thop") == "misses 100%: functional convolutions outside leaf modules (in all -93%)"
    assert verdict("fvcore") == "adds 2%: BatchNorm = 2 per element"


def test_conversions_are_derived_from_raw_and_normalised_counts() -> None:
    from flopaudit.reports.verdict import conversion

    assert conversion(_r("m", "x", 100, unit=Unit.FLOP, raw=200)) == "reports FLOPs: halve it"
    assert conversion(_r("m", "x", 100, raw=25, batch_size=4)) == "counts per sample: multiply by the batch size 4"
    assert conversion(_r("m", "x", 100)) is None


def test_no_verdict_without_a_reference_count() -> None:
    run = AuditRun((_r("m", "reference", None, Status.ERROR, error="RuntimeError: boom"), _r("m", "thop", 5)))
    v = build_report(run).verdict("m")
    assert v is not None and v.headline == "m: no verdict, the reference counter failed: RuntimeError: boom"


def test_a_model_that_failed_itself_is_said_once_not_once_per_counter() -> None:
    error = "model reads a tensor's value during its forward pass (RuntimeError: item() on meta)"
    run = AuditRun(tuple(_r("m", b, None, Status.ERROR, error=error) for b in ("reference", "thop", "fvcore")),
                   cases=(CaseInfo("m", error=error),))
    v = build_report(run).verdict("m")
    assert v is not None and v.headline == f"m: no verdict, {error}" and v.findings == ()
    # nothing counted says what it is made of: no family (its zoo tags would say)
    assert v.family == "family unknown: not counted"
    tagged = AuditRun(run.results, cases=(CaseInfo("m", ("conv",), error=error),))
    assert build_report(tagged).verdict("m").family == "convnets"  # type: ignore[union-attr]


def test_a_verdict_says_what_the_reference_cannot_price() -> None:
    """bitsandbytes' 4-bit kernel fills its output in C: the reference counts it 0 (unsupported), and so
    does a counter that sees it as an opaque operator; the one that counts it reads MACs against 0."""
    run = AuditRun((
        _r("m", "reference", 0, unsupported={"bitsandbytes.gemv_4bit.default": 2},
           predictions=(RulesetPrediction("torch-flop-counter", 0), RulesetPrediction("calflops", 0))),
        _r("m", "torch-flop-counter", 0),
        _r("m", "calflops", 32_768),
    ))
    v = build_report(run).verdict("m")
    assert v is not None and v.unpriced == (("bitsandbytes.gemv_4bit.default", 2),)
    assert v.headline == ("m (canonical 0 MACs): use torch-flop-counter, exact (the reference prices no "
                          "bitsandbytes.gemv_4bit.default x2: a counter that agrees with it misses that work too)")
    assert [f.text for f in v.findings] == ["calflops reads 32.768K MACs where the reference counts 0: "
                                            "32.768K MACs unexplained"]


# --- families --------------------------------------------------------------------------------------------------


def _ref(**macs: int) -> CountResult:
    return _r("m", "reference", sum(macs.values()), extra=breakdown({f"macs.{k}": v for k, v in macs.items()}))


@pytest.mark.parametrize(("tags", "macs", "family"), [
    (("custom", "rnn"), {"rnn": 5}, "custom layers"),  # tags first, in FAMILY_TAGS order
    (("lstm",), {"matmul": 5}, "RNNs"),
    (("mha",), {"conv": 5}, "transformers"),
    (("conv",), {"matmul": 5}, "convnets"),
    ((), {"conv": 10, "rnn": 1}, "RNNs"),
    ((), {"conv": 10, "attention": 1}, "transformers"),
    ((), {"conv": 7, "matmul": 93}, "convnets"),  # ConvNeXt: 7% of its MACs in convolutions
    ((), {"conv": 2, "matmul": 98}, "MLPs and other layers"),  # an MLP-Mixer's patch embedding
    (("classification", "timm"), {"matmul": 5}, "MLPs and other layers"),
])
def test_family_of(tags: tuple[str, ...], macs: dict[str, int], family: str) -> None:
    assert family_of(tags, _ref(**macs)) == family


def test_a_convnet_built_with_transformers_is_a_convnet() -> None:
    """The library's tag decides no family: transformers' ResNet is a convnet, its ViT a transformer."""
    from flopaudit.zoo import get_case

    assert family_of(get_case("hf-resnet-tiny").tags, _ref(conv=100)) == "convnets"
    assert family_of(get_case("hf-convnext-tiny").tags, _ref(matmul=93, conv=7)) == "convnets"
    assert family_of(get_case("hf-vit-tiny").tags, _ref(conv=1, matmul=100)) == "transformers"


def test_attention_written_out_as_products_makes_a_transformer() -> None:
    """Eager attention (Hugging Face's BLOOM, Funnel, Gemma 2) runs as matmuls: the reference's
    ``activation_product_macs`` fact says which of them multiply two activations."""
    eager = _r("m", "reference", 100, extra=breakdown({"macs.matmul": 100, "activation_product_macs": 8}))
    assert family_of((), eager) == "transformers"
    assert family_of((), _ref(matmul=100)) == "MLPs and other layers"
    assert family_of(("conv",), eager) == "convnets"  # zoo tags first


def test_family_of_a_model_with_a_layer_no_counter_prices() -> None:
    cell = CellExplanation("m", "thop", "ok", "unsupported", 10, 100, 10,
                           (_cause("unsupported", "no rule for MyBlock modules", -90),))
    assert family_of((), _ref(matmul=100), [cell]) == "custom layers"
    small = CellExplanation("m", "thop", "ok", "unsupported", 10, 100_000, 10,
                            (_cause("unsupported", "no rule for MyBlock modules", -90),))
    assert family_of((), _ref(matmul=100_000), [small]) == "MLPs and other layers"  # under 1% of the work


def _cause(kind: str, rule: str, macs: int):  # noqa: ANN202
    from flopaudit.reports.model import Cause

    return Cause(kind, rule, macs)


def test_family_ranking_and_its_evidence() -> None:
    """Two convnets: torch-flop-counter exact on both; fvcore exact on one and
    4% off on the other; thop within 1% on one, 12% off on the other; torchinfo fails once."""
    results = []
    for model, scale in (("a", 1), ("b", 2)):
        ref = REF * scale
        results += [
            _r(model, "reference", ref, extra=breakdown({"macs.conv": ref}), predictions=(
                RulesetPrediction("fvcore", ref if model == "a" else ref + 40_000 * scale,
                                  () if model == "a" else (RuleContribution("BN", "rule", 40_000 * scale),)),
                RulesetPrediction("thop", ref + (5_000 if model == "a" else 120_000) * scale,
                                  (RuleContribution("thop BN", "rule", (5_000 if model == "a" else 120_000) * scale),)),
                RulesetPrediction("torch-flop-counter", ref),
                RulesetPrediction("torchinfo", ref),
            )),
            _r(model, "torch-flop-counter", ref),
            _r(model, "fvcore", ref if model == "a" else ref + 40_000 * scale),
            _r(model, "thop", ref + (5_000 if model == "a" else 120_000) * scale),
            _r(model, "torchinfo", ref) if model == "a" else _r(model, "torchinfo", None, Status.ERROR, error="boom"),
        ]
    report = build_report(AuditRun(tuple(results)))
    (family,) = report.families
    assert family.family == "convnets" and family.models == ("a", "b")
    assert [e.backend for e in family.ranking] == ["torch-flop-counter", "fvcore", "torchinfo", "thop"]
    assert family.best == ("torch-flop-counter",)
    fv = family.ranking[1]
    assert (fv.exact, fv.close, fv.failed, fv.worst) == (1, 0, 0, ("b", pytest.approx(0.04), "BN"))
    info = family.ranking[2]
    assert (info.exact, info.failed, info.failures) == (1, 1, ("b",))
    from flopaudit.reports.verdict import evidence_text, recommendation_text

    assert evidence_text(fv, 0.01) == "exact on 1/2; worst b +4%: BN"
    assert evidence_text(info, 0.01) == "exact on 1/2; fails on 1 (b)"
    import dataclasses

    absent = dataclasses.replace(info, not_applicable=("b",))  # it could not take b's inputs
    assert evidence_text(absent, 0.01) == "exact on 1/2; does not apply to 1 (b)"
    assert recommendation_text(family) == "convnets (2 models): use torch-flop-counter (exact on 2/2)"


def test_a_counter_that_does_not_apply_is_not_said_to_fail() -> None:
    from flopaudit.reports.verdict import evidence_text

    run = AuditRun((_r("m", "reference", REF, predictions=(RulesetPrediction("thop", REF),)),
                    _r("m", "thop", REF),
                    _r("m", "torchstat", None, Status.NOT_APPLICABLE, error="takes one (C, H, W) image size"),
                    _r("m", "torchinfo", None, Status.ERROR, error="boom")), (CaseInfo("m", ("conv",), "(2x3)", 2),))
    (family,) = build_report(run).families
    texts = {e.backend: evidence_text(e, 0.01) for e in family.ranking}
    assert texts["torchstat"] == "within 1% on 0/1; does not apply to 1 (m)"
    assert texts["torchinfo"] == "within 1% on 0/1; fails on 1 (m)"


# --- footer, side effects, frames -----------------------------------------------------------------------------


def test_footer_when_only_the_reference_ran() -> None:
    run = AuditRun((_r("m", "reference", 100),))
    text = footer(build_report(run))
    assert text == "cells: none to compare (only the reference counter ran)."


def test_footer_has_a_verdict_per_model_and_the_cell_counts() -> None:
    text = footer(build_report(_model_run()))
    assert text.startswith("verdict (canonical = flopaudit's reference count; within = 1%):\n  m (canonical")
    assert "by family:\n  convnets (1 model): use ptflops-aten (within 1% on 1/1)" in text
    assert text.splitlines()[-1].startswith("cells: rule 3, unsupported 2, timeout 1.")


def test_footer_says_a_failure_shared_by_several_models_once() -> None:
    missing = "the import package 'torchsummary' installed here is another distribution's"
    results = []
    for model in ("a", "b", "c"):
        results += [_r(model, "reference", REF), _r(model, "thop", REF),
                    _r(model, "torch-summary", None, Status.NOT_APPLICABLE, error=missing)]
    results.append(_r("c", "torchinfo", None, Status.ERROR, error="boom"))
    text = footer(build_report(AuditRun(tuple(results), tuple(CaseInfo(m, ("conv",), "(1x3x8x8)", 1)
                                                             for m in "abc"))), width=400)
    assert text.count("torch-summary does not apply") == 1, text
    assert f"  on 3 models: torch-summary does not apply: {missing}." in text.splitlines()
    assert "torchinfo fails: boom." in text  # one model's failure stays in its paragraph
    assert all("torch-summary" not in line for line in text.splitlines() if line.startswith("  a (canonical"))


def test_side_effects_are_summarised_not_cut() -> None:
    from flopaudit.reports.explain import side_effect_summary

    results = [
        _r("a", "thop", 1, side_effects=("added state_dict keys: total_ops, total_params, l1.total_ops (+40 more)",
                                         "changed train/eval mode of: <root>, l1, l2 (+3 more)")),
        _r("b", "thop", 1, side_effects=("added state_dict keys: total_ops, total_params, x.y.z.zero_ops",)),
        _r("c", "thop", 1, side_effects=("moved model from ['meta'] to ['cpu', 'meta']",)),
    ]
    assert side_effect_summary(results) == (
        "added state_dict keys (total_ops, total_params, zero_ops; on 2 of 3 models)",
        "changed train/eval mode (3 modules; on 1 of 3 models)",
        "moved model from ['meta'] to ['cpu', 'meta'] (on 1 of 3 models)",  # a change that lists no items
    )


def test_audit_frame_has_the_judgement_and_layers_the_per_layer_table() -> None:
    import flopaudit

    x = torch.randn(4, 16)
    frame = flopaudit.audit(einsum_net(), x, isolate=False, backends=("reference", "thop", "torch-flop-counter"))
    assert {"classification", "causes", "verdict"} <= set(frame.columns)
    row = frame.set_index("backend")
    assert row.loc["thop", "classification"] == "unsupported"
    assert row.loc["thop", "causes"] == "unsupported: no rule for EinsumLayer modules (-86%)"
    assert row.loc["thop", "verdict"] == "misses 86%: no rule for EinsumLayer modules"
    assert row.loc["torch-flop-counter", "verdict"] == "canonical count exactly (reports FLOPs: halve it)"
    assert row.loc["reference", "classification"] == "reference"
    assert row.loc["reference", "verdict"].startswith("model (canonical 7.168K MACs): use torch-flop-counter")

    layers = flopaudit.layers(einsum_net(), x, isolate=False, backends=("reference", "thop"))
    thop = layers[layers.backend == "thop"].set_index("layer")
    assert list(thop.index) == ["", "0", "1"] and list(thop.leaf) == [False, True, True]
    assert thop.loc["1", "reference_macs"] == 4 * 16 * 96 and thop.loc["1", "macs"] == 0
    assert thop.loc["1", "difference"] == -4 * 16 * 96
    assert thop.loc["1", "cause"] == "unsupported: no rule for EinsumLayer modules"
    assert thop.loc["0", "difference"] == 0 and thop.loc["0", "cause"] == ""
    ref = layers[(layers.backend == "reference") & layers.leaf]
    assert int(ref.reference_macs.sum()) == 4 * 16 * 16 + 4 * 16 * 96


def test_what_the_reference_notes_of_its_own_count_is_in_the_verdict() -> None:
    """A training step of a model with nothing to train has no backward pass: the reference says so,
    and so do the terminal verdict and report.md, once per model; its notes on how another backend was
    predicted and on operators without a formula are not repeated there."""
    from flopaudit.reports.render_markdown import render_markdown
    from flopaudit.reports.verdict import footer

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    for p in model.parameters():
        p.requires_grad_(False)
    run = audit_model(model, torch.randn(2, 8), backends=["reference", "torch-flop-counter"], isolate=False,
                      pass_="train", optimizer="adamw")
    report = build_report(run)
    said = "Note: the loss does not require a gradient (no trainable parameter reaches it): no backward pass."
    assert said in " ".join(footer(report, width=1000).split())
    assert "  - " + said.rstrip(".") in render_markdown(report)
    (verdict,) = report.verdicts
    notes = [f for f in verdict.findings if f.kind == "note"]
    assert [f.text for f in notes] == [said.rstrip("."), "Note: no parameter received a gradient: the optimizer "
                                       "stepped nothing"], notes


def test_a_long_failure_is_cut_at_a_word_in_the_verdict() -> None:
    from flopaudit.reports.verdict import _short

    text = "cannot count on the meta device: DeepSpeed's profiler counts a Linear layer twice on meta tensors " \
           "(probed: linear-2d reads 16672 MACs on meta, 8192 on the CPU), so its counts there are not its own"
    short = _short(text)
    assert len(short) <= 160 and short.endswith(" …"), short
    assert text.startswith(short.removesuffix(" …")) and text[len(short) - 2] == " ", short  # a whole word kept
    assert _short("short enough") == "short enough"


def test_a_counters_own_note_is_in_the_verdict_naming_the_counters() -> None:
    """On meta, torch.flop_counter and ptflops-aten count attention the CPU's fused kernel hides from
    them; their results say so, and the verdict says it once for both, not what the reference said too."""
    from flopaudit.adapters.descriptor import META_DISPATCH_NOTE
    from flopaudit.reports.verdict import model_verdict

    shared = "built with empty_weights()"
    results = {
        "reference": _r("m", "reference", 100, notes=(shared,)),
        "torch-flop-counter": _r("m", "torch-flop-counter", 100, notes=(shared, META_DISPATCH_NOTE)),
        "ptflops-aten": _r("m", "ptflops-aten", 100, notes=(META_DISPATCH_NOTE,)),
        "thop": _r("m", "thop", 50),
    }
    verdict = model_verdict("m", [], results)
    notes = [f.text for f in verdict.findings if f.kind == "note"]
    assert notes == [f"Note: {shared}", f"Note on torch-flop-counter and ptflops-aten: {META_DISPATCH_NOTE}"], notes
