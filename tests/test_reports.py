"""The diff report: cell classification, causes adding up, renderers, HTML in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from flopaudit.records import CountResult, RuleContribution, RulesetPrediction, Status, Unit, breakdown
from flopaudit.reports import build_report, render_csv, render_json, render_markdown, write_reports
from flopaudit.run import AuditRun, CaseInfo

REF = 1_000_000  # canonical MACs of the synthetic model


def _r(backend: str, macs: int | None, *, raw: int | float | None = None, status: Status = Status.OK,
       unit: Unit = Unit.MAC, modules: dict[str, int] | None = None, **kw: object) -> CountResult:
    return CountResult(
        model="net", backend=backend, backend_version="1", torch_version="2", unit=unit, status=status,
        raw_total=macs if raw is None else raw, macs=macs, per_module=breakdown(modules), **kw,  # type: ignore[arg-type]
    )


def _run() -> AuditRun:
    lstm = RuleContribution("aten.lstm not counted", "unsupported", -200_000, (("rnn", -200_000),))
    bias = RuleContribution("counts conv bias", "rule", 3_000, (("conv", 3_000),))
    fn = RuleContribution("functional ops unseen by module hooks", "missed-functional", -50_000, (("", -50_000),))
    reference = _r("reference", REF, modules={"": REF, "conv": 750_000, "rnn": 200_000, "head": 50_000}, predictions=(
        RulesetPrediction("fvcore", REF - 200_000, (lstm,)),
        RulesetPrediction("thop", REF + 3_000 - 50_000, (bias, fn)),
        RulesetPrediction("torch-flop-counter", REF, ()),
        RulesetPrediction("torchinfo", REF + 3_000, (bias,)),
    ))
    results = (
        reference,
        _r("fvcore", 800_000, modules={"": 800_000, "conv": 750_000, "rnn": 0, "head": 50_000},
           unsupported=breakdown({"aten::lstm": 1})),
        _r("thop", REF + 3_000 - 50_000),
        _r("torch-flop-counter", REF, raw=2 * REF, unit=Unit.FLOP),
        _r("torchinfo", REF + 3_000 + 7_000),  # 7000 MACs nobody predicted
        _r("ptflops-aten", None, status=Status.TIMEOUT, error="no result after 1 s; the count was stopped"),
    )
    return AuditRun(results, (CaseInfo("net", ("t",), "(1x3x8x8)", 1, None, None, 0.01),))


def test_cells_are_classified_by_their_largest_cause() -> None:
    report = build_report(_run())
    cls = {c.backend: c.classification for c in report.cells}
    assert cls == {
        "fvcore": "unsupported",
        "thop": "missed-functional",
        "torch-flop-counter": "unit",
        "torchinfo": "unexplained",
        "ptflops-aten": "timeout",
    }


def test_causes_and_residual_add_up_to_the_difference() -> None:
    for cell in build_report(_run()).cells:
        if cell.predicted_macs is None:
            continue
        assert cell.difference == sum(c.macs for c in cell.causes) + cell.residual, cell.backend
    torchinfo = build_report(_run()).cell("net", "torchinfo")
    assert torchinfo is not None and torchinfo.residual == 7_000 and torchinfo.difference == 10_000


def test_tolerance_absorbs_small_residuals() -> None:
    loose = build_report(_run(), tolerance=0.01).cell("net", "torchinfo")
    assert loose is not None and loose.classification == "rule"


def test_top_layers_point_at_the_module_responsible() -> None:
    fv = build_report(_run()).cell("net", "fvcore")
    assert fv is not None and fv.top_layers == (("rnn", -200_000),)


def test_scorecard() -> None:
    scores = {s.backend: s for s in build_report(_run()).scores}
    assert scores["fvcore"].misses == ("aten.lstm not counted",)
    assert scores["torch-flop-counter"].exact_canonical == 1 and scores["torch-flop-counter"].exact_own_rules == 1
    assert scores["torchinfo"].unexplained == 1
    assert scores["ptflops-aten"].ok == 0 and scores["ptflops-aten"].failed == 1


def test_markdown_json_csv() -> None:
    report = build_report(_run())
    md = render_markdown(report)
    assert "| net | 1.000M |" in md
    assert "unsupported: aten.lstm not counted: -200.000K (rnn -200.000K)" in md
    assert "residual not explained: +7.000K" in md
    data = json.loads(render_json(report))
    assert data["schema"] == "flopaudit.report" and data["schema_version"] == 2
    fv = next(c for c in data["cells"] if c["backend"] == "fvcore")
    assert fv["difference"] == -200_000 and fv["causes"][0]["macs"] == -200_000
    csv_lines = render_csv(report).splitlines()
    assert csv_lines[0].startswith("model,backend,status,classification")
    assert len(csv_lines) == 1 + 5


def test_write_reports_writes_every_format(tmp_path: Path) -> None:
    paths = write_reports(_run(), tmp_path)
    assert sorted(p.name for p in paths) == ["report.csv", "report.html", "report.json", "report.md"]
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "sortable" in html and "http" not in html.split("<body>")[1].replace("https://", "")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    write_reports(_run(), tmp_path, formats=("html",))
    page = (tmp_path / "report.html").resolve()
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=2000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-ready="1"' in html  # the page's script ran to the end
    assert html.count("<tr>") >= 1 + 1 + 5 and "<rect" in html
    assert "unsupported" in html and "ptflops-aten" in html
    shot = Path(__file__).parent / "_artifacts" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    proc = subprocess.run([*flags, "--window-size=1400,1200", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000  # a real page, not a blank one


def test_leaf_paths_are_those_with_nothing_under_them() -> None:
    import random

    from flopaudit.module_paths import leaf_paths as _leaves

    assert sorted(_leaves({"a", "a.b", "a.b.c", "a-x", "a0", "b", "b.c"})) == ["a-x", "a.b.c", "a0", "b.c"]
    rng = random.Random(0)
    for _ in range(100):
        paths = {".".join(rng.choice(["a", "b", "a-", "0"]) for _ in range(rng.randint(1, 4))) for _ in range(25)}
        naive = sorted(p for p in paths if not any(q.startswith(p + ".") for q in paths))
        assert sorted(_leaves(paths)) == naive
