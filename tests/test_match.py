"""``flopaudit match``: which counter, unit and convention reproduces a published figure.

The arithmetic is checked on hand-made counts; the command on published
figures from sources other than this code: torchvision's weight metadata
(``meta["_ops"]``, labelled GFLOPS, which are multiply-accumulates), the
MobileNetV2 paper (Sandler et al. 2018: 300M multiply-adds) and the ptflops
README's benchmark table (resnet50, ``pytorch`` backend: 4.13 GMac).
"""

from __future__ import annotations

import pytest

from flopaudit.cli import main
from flopaudit.errors import UserError
from flopaudit.match import Convention, Counts, match, missing, parse_target
from flopaudit.records import CountResult, RulesetPrediction, Status, Unit, breakdown

# --- parsing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value", "precision"), [
    ("4.089G", 4.089e9, 0.0005e9),
    ("300M", 300e6, 50e6),  # an integer's trailing zeros are not significant
    ("4.100G", 4.1e9, 0.0005e9),  # a decimal's are
    ("1,814M", 1814e6, 0.5e6),
    ("4.1e9", 4.1e9, 0.05e9),
    ("3.6 GFLOPs", 3.6e9, 0.05e9),
    ("585k", 585e3, 0.5e3),
])
def test_parse_target(text: str, value: float, precision: float) -> None:
    t = parse_target(text)
    assert t.value == pytest.approx(value) and t.precision == pytest.approx(precision)


@pytest.mark.parametrize("text", ["abc", "0", "-1G", "4.5X", ""])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(UserError):
        parse_target(text)


# --- arithmetic on hand-made counts ----------------------------------------------------------------------------

# conv 1000 MACs + matmul 100 MACs; extra FLOPs: conv bias 10, norms 40, activations 20; batch statistics
# would add 60; batch of 2. thop reads 1160 = MACs + norms + activations + 0 (no bias): in MAC units.
COUNTS = Counts(
    model="net", batch=2, macs={"conv": 1000, "matmul": 100}, extra={"conv": 10, "norm": 40, "activation": 20},
    batch_statistics=60, backends={"reference": 1100, "thop": 1160}, inputs="(2x3x8x8)",
)


def test_convention_values_by_hand() -> None:
    def value(spec: str) -> float | None:
        return Convention.parse(spec, COUNTS.backends).resolve(COUNTS).value(COUNTS)

    assert value("MAC:all") == 1100
    assert value("MAC:conv") == 1000
    assert value("FLOP:all") == 2200
    assert value("FLOP:all+all") == 2200 + 70  # canonical FLOPs
    assert value("MAC:conv,matmul+norm,activation") == 1160
    assert value("MAC:all+norm,batch-statistics") == 1100 + 40 + 60
    assert value("FLOP:conv+conv/sample") == (2000 + 10) / 2
    assert value("thop:FLOP") == 2 * 1160
    assert value("thop:MAC/sample") == 580


@pytest.mark.parametrize("spec", ["MAC", "XYZ:all", "thop:GFLOP", "nosuch:MAC", "MAC:+norm"])
def test_bad_convention_specs(spec: str) -> None:
    with pytest.raises(UserError):
        Convention.parse(spec, COUNTS.backends).resolve(COUNTS)


def test_unknown_category_in_a_spec() -> None:
    with pytest.raises(UserError, match="no contraction category 'rnn'"):
        Convention.parse("MAC:rnn").resolve(COUNTS)


def test_spec_round_trips() -> None:
    for conv in (Convention("FLOP", "reference", ("conv",), ("norm",), True, True), Convention("MAC", "thop")):
        assert Convention.parse(conv.spec, COUNTS.backends) == conv


def test_a_backend_count_beats_an_equal_combination() -> None:
    """1160 is thop's count and MACs + norms + activations: one match, thop first
    (a backend's own count departs by nothing)."""
    result = match(COUNTS, parse_target("1.160K"), ("MAC",))  # written to the unit: discriminating
    top = result.matches[0]
    assert top.value == 1160 and top.closeness == 0
    assert top.best.source == "thop"
    assert "MAC:conv,matmul+activation,norm" in [c.spec for c in top.conventions]


def test_flops_and_per_sample() -> None:
    top = match(COUNTS, parse_target("2200"), ("FLOP",)).matches[0]
    assert top.best.spec == "FLOP:conv,matmul" and top.best.describe(COUNTS) == "2 x canonical MACs"
    per_sample = match(COUNTS, parse_target("550"), ("MAC",)).matches[0]
    assert per_sample.best.spec == "MAC:conv,matmul/sample" and per_sample.value == 550


def test_simplest_convention_first_when_the_figure_does_not_discriminate() -> None:
    """'1.1K' is 1100 +/- 50: every value within 1% ties; the canonical MACs (no
    departure) come before conv + norms + activations... (1060, further anyway)
    and before MACs + conv bias (1110, one departure)."""
    result = match(COUNTS, parse_target("1.1K"), ("MAC",))
    assert result.matches[0].best.spec == "MAC:conv,matmul"
    assert [m.value for m in result.found] == [1100, 1110]


def test_nothing_within_says_what_is_closest_and_missing() -> None:
    result = match(COUNTS, parse_target("5000"), ("MAC",))
    assert not result.found
    text = "\n".join(missing(result))
    assert "closest: 1.230K MAC" in text  # 1100 MACs + 70 extra + 60 batch statistics: everything
    assert "the target is above every convention" in text
    assert "canonical: 1.100K MACs" in text


def test_a_sample_count_gap_is_named() -> None:
    """Counted on a batch of 4 (1000 MACs, 250 per sample); a figure of 4000 is
    4 x the batch's count: counted on 16 samples, perhaps."""
    result = match(Counts("net", 4, {"conv": 1000}, {}, backends={"reference": 1000}), parse_target("4.000K"),
                   ("MAC",))
    assert not result.found and sorted(m.value for m in result.matches) == [250, 1000]
    assert any(line.startswith("the target is 4 x this count (per batch of 4)") for line in missing(result))


def test_counts_from_results_use_predictions_for_backends_that_failed() -> None:
    ref = CountResult(
        model="m", backend="reference", backend_version="", torch_version="", unit=Unit.MAC, status=Status.OK,
        macs=1100, raw_total=1100, batch_size=1,
        extra=breakdown({"macs.conv": 1000, "macs.matmul": 100, "extra_flops.norm": 40}),
        predictions=(RulesetPrediction("torchinfo", 900), RulesetPrediction("fvcore", 1140)),
    )
    info = CountResult(model="m", backend="torchinfo", backend_version="", torch_version="", unit=Unit.MAC,
                       status=Status.ERROR, error="boom")
    fv = CountResult(model="m", backend="fvcore", backend_version="", torch_version="", unit=Unit.MAC,
                     status=Status.OK, macs=1140, raw_total=1140)
    counts = Counts.from_results("m", [ref, info, fv])
    assert counts.backends == {"reference": 1100, "fvcore": 1140, "torchinfo": 900}
    assert counts.predicted == {"torchinfo"} and "error" in counts.how["torchinfo"]
    assert counts.macs == {"conv": 1000, "matmul": 100} and counts.extra == {"norm": 40}


def test_eager_attention_products_are_a_category_of_their_own() -> None:
    """The reference's ``activation_product_macs`` (attention written out as products of activations)
    are taken out of ``matmul``, so a convention can leave eager attention out as it leaves ``attention`` out."""
    ref = CountResult(
        model="m", backend="reference", backend_version="", torch_version="", unit=Unit.MAC, status=Status.OK,
        macs=1300, raw_total=1300, batch_size=1,
        extra=breakdown({"macs.conv": 1000, "macs.matmul": 300, "activation_product_macs": 120}),
    )
    counts = Counts.from_results("m", [ref])
    assert counts.macs == {"conv": 1000, "matmul": 180, "activation-products": 120}
    every = Convention.parse("MAC:all").resolve(counts)
    assert every.value(counts) == 1300 and every.departures(counts) == 0
    left_out = Convention.parse("MAC:conv,matmul").resolve(counts)
    assert left_out.value(counts) == 1180
    assert "(activation-products left out)" in left_out.describe(counts)
    only_products = CountResult(
        model="m", backend="reference", backend_version="", torch_version="", unit=Unit.MAC, status=Status.OK,
        macs=120, raw_total=120, batch_size=1,
        extra=breakdown({"macs.matmul": 120, "activation_product_macs": 120}),
    )
    assert Counts.from_results("m", [only_products]).macs == {"activation-products": 120}


# --- published figures through the command line ---------------------------------------------------------------


_CACHE: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _shared_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One result cache for this module: each model is counted once, however many figures it is matched to."""
    _CACHE[:] = [str(tmp_path_factory.mktemp("match-cache"))]


def _match(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["match", *argv, "--cache-dir", _CACHE[0]])
    return code, capsys.readouterr().out.splitlines()


def _first_row(lines: list[str]) -> str:
    header = next(k for k, line in enumerate(lines) if line.lstrip().startswith("#"))
    return lines[header + 2]


def test_torchvision_ops_of_resnet50_are_canonical_macs(capsys: pytest.CaptureFixture[str]) -> None:
    from torchvision.models import ResNet50_Weights

    ops = ResNet50_Weights.IMAGENET1K_V1.meta["_ops"]  # 4.089, labelled GFLOPS
    code, lines = _match(capsys, "resnet50", "--target", f"{ops}G", "--unit", "auto", "--backends", "reference")
    row = _first_row(lines)
    assert code == 0
    assert "= target" in row and " MAC " in row and "canonical MACs" in row, "\n".join(lines)
    assert any("flopaudit match resnet50 --convention MAC:conv,matmul" in line for line in lines)


def test_mobilenet_v2_paper_multiply_adds(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _match(capsys, "mobilenet_v2", "--target", "300M", "--unit", "MAC", "--backends", "reference")
    row = _first_row(lines)
    assert code == 0 and "within" in row and "canonical MACs" in row, "\n".join(lines)


def test_ptflops_readme_figure_is_ptflops(capsys: pytest.CaptureFixture[str]) -> None:
    """ptflops' README benchmark: resnet50, pytorch backend, 4.13 GMac."""
    code, lines = _match(capsys, "resnet50", "--target", "4.13G", "--unit", "MAC", "--backends", "ptflops-pytorch")
    row = _first_row(lines)
    assert code == 0 and "ptflops-pytorch as it reports" in row, "\n".join(lines)
    assert any("flopaudit run --models resnet50 --backends ptflops-pytorch" in line for line in lines)


def test_a_flop_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """torchvision's resnet18 _ops (1.814 G MACs) written as FLOPs, 2 per multiply-add."""
    from torchvision.models import ResNet18_Weights

    flops = f"{2 * ResNet18_Weights.IMAGENET1K_V1.meta['_ops']:.3f}G"
    code, lines = _match(capsys, "resnet18", "--target", flops, "--unit", "flop", "--backends", "reference")
    assert code == 0 and "2 x canonical MACs" in _first_row(lines), "\n".join(lines)
    code, lines = _match(capsys, "resnet18", "--target", flops, "--unit", "MAC", "--backends", "reference")
    text = "\n".join(lines)
    assert code == 1 and f"nothing within 1% of {flops}" in text
    assert "the gap is a factor of 2: try --unit FLOP" in text


def test_nothing_within_names_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _match(capsys, "resnet18", "--target", "2.5G", "--backends", "reference")
    text = "\n".join(lines)
    assert code == 1
    assert "nothing within 1% of 2.5G" in text and "closest:" in text and "canonical: 1.814G MACs (-27%)" in text
    assert "instead of 224x224" in text


def test_convention_prints_one_value(capsys: pytest.CaptureFixture[str]) -> None:
    """SmallConvNet-like zoo case conv2d-bias: Conv2d(3, 8, 3) with bias on 4x3x16x16 (see the zoo:
    110.592K MACs); MAC:all+conv adds one bias add per output element."""
    code, lines = _match(capsys, "conv2d-bias", "--convention", "MAC:all+conv", "--backends", "reference")
    assert code == 0
    out_elements = 110_592 // (3 * 9)
    assert f"({110_592 + out_elements})" in lines[-1], lines


@pytest.mark.parametrize(("model", "category"), [("attention-matmul", "activation-products"),
                                                ("attention-sdpa", "attention")])
def test_attention_left_out_eager_or_fused(capsys: pytest.CaptureFixture[str], model: str, category: str) -> None:
    """The same 4-head self-attention (zoo: (2, 6, 16), heads of 4) written with ``@`` or through SDPA: the
    attention products are one category either way, so leaving attention out leaves the four projections."""
    from flopaudit.zoo.hard.attention import E, L, N

    projections = 4 * N * L * E * E  # q, k, v and the output Linear(16, 16)
    products = 2 * N * L * L * E  # scores and weighted values, over all heads
    for spec, value in ((f"MAC:{category}", products), ("MAC:matmul", projections)):
        code, lines = _match(capsys, model, "--convention", spec, "--backends", "reference")
        assert code == 0 and f"({value})" in lines[-1], (spec, lines)


@pytest.mark.parametrize("argv", [
    ["resnet18", "--target", "lots"],
    ["resnet18"],
    ["resnet*", "--target", "1G"],
    ["resnet18", "--target", "1G", "--within", "-1%"],
    ["resnet18", "--target", "1G", "--unit", "GFLOP"],
    ["conv2d-bias", "--convention", "MAC:rnn", "--backends", "reference"],
])
def test_user_mistakes_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["match", *argv, "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flopaudit: error:") and len(err.strip().splitlines()) == 1
