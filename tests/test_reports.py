"""The diff report: cell classification, causes adding up, renderers, HTML in Chromium."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

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
from flopaudit.reports import build_report, render_csv, render_json, render_markdown, write_reports

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


def _rich_run() -> AuditRun:
    """``_run()`` plus a model that stresses the layout: long cause names, many
    misses and side effects, a zero count, layers beyond the listed ones."""
    base = _run()
    many = tuple(
        RuleContribution(f"aten._some_very_long_fused_operator_name_number_{k}_for_cpu not counted", "unsupported",
                         -1000 * (k + 1), tuple((f"blocks.{k}.attention.inner_projection_{j}", -100) for j in range(8)),
                         layer_count=20)
        for k in range(9)
    )
    total = sum(c.macs for c in many)
    effects = ("added state_dict keys: total_ops, total_params, blocks.0.total_ops, blocks.0.total_params (+50 more)",
               "left hooks on: blocks.0.forward_hooks, blocks.0.forward_pre_hooks (+30 more)",
               "changed train/eval mode of: <root>, blocks, blocks.0 (+12 more)")
    ref = CountResult(model="a-model-with-a-rather-long-identifier", backend="reference", backend_version="1",
                      torch_version="2", unit=Unit.MAC, status=Status.OK, raw_total=REF, macs=REF,
                      predictions=(RulesetPrediction("thop", REF + total, many), RulesetPrediction("fvcore", 0, (
                          RuleContribution("everything missed", "unsupported", -REF, (("", -REF),)),))))
    wide = (
        ref,
        dataclasses.replace(ref, backend="thop", macs=REF + total, raw_total=REF + total, predictions=(),
                            side_effects=effects),
        dataclasses.replace(ref, backend="fvcore", macs=0, raw_total=0, predictions=()),
        dataclasses.replace(ref, backend="torchinfo", status=Status.ERROR, macs=None, raw_total=None, predictions=(),
                            error="RuntimeError: Failed to run torchinfo. See above stack traces for more details."),
    )
    return AuditRun(base.results + wide, base.cases + (CaseInfo("a-model-with-a-rather-long-identifier"),))


#: Injected into a copy of the page: checks what a reader sees and writes the findings into <pre id="audit">.
AUDIT_SCRIPT = """<script>
(function () {
  function rgb(s) { var m = /rgba?\\(([^)]+)\\)/.exec(s || ""); if (!m) return null;
    var p = m[1].split(",").map(parseFloat); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; }
  function lum(c) { function ch(v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
    return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b); }
  function background(el) { for (; el; el = el.parentElement) { var c = rgb(getComputedStyle(el).backgroundColor);
    if (c && c.a > 0) return c; } return {r: 255, g: 255, b: 255, a: 1}; }
  function contrast(a, b) { var x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  var out = {low: [], checked: 0};
  document.body.querySelectorAll("*").forEach(function (el) {
    if (el.closest("script, style, #audit")) return;
    var own = Array.prototype.some.call(el.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
    if (!own || !el.getClientRects().length) return;
    var cs = getComputedStyle(el), svg = el instanceof SVGElement;
    var fg = rgb(svg ? cs.fill : cs.color), bg = background(svg ? el.ownerSVGElement.parentElement : el);
    var ratio = contrast(fg, bg);
    out.checked += 1;
    if (ratio < 4.5) out.low.push([el.textContent.trim().slice(0, 50), ratio.toFixed(2), cs.color, JSON.stringify(bg)]);
  });
  var h2 = document.querySelectorAll("h2");
  out.first_heading = h2[0].textContent;
  out.verdict_before_heatmap = !!(document.getElementById("verdict").compareDocumentPosition(
    document.getElementById("heatmap")) & Node.DOCUMENT_POSITION_FOLLOWING);
  out.verdict_rows = Array.prototype.map.call(document.querySelectorAll("#verdict-table tbody tr"),
    function (tr) { return tr.innerText; });
  var score = document.getElementById("score-table");
  out.viewport = document.documentElement.clientWidth;
  out.score_right = score.getBoundingClientRect().right;
  out.page_width = document.documentElement.scrollWidth;
  out.clipped = Array.prototype.filter.call(score.querySelectorAll("th, td"), function (c) {
    return c.scrollWidth > c.clientWidth + 1; }).map(function (c) { return c.textContent.slice(0, 40); });
  var heat = document.getElementById("heat-table"), th = heat.tHead.rows[0].cells[3];
  th.click();
  out.heat_sorted = Array.prototype.map.call(heat.tBodies[0].rows, function (r) {
    return parseFloat(r.cells[3].getAttribute("data-sort")); });
  var pre = document.createElement("pre"); pre.id = "audit"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The page as a reader sees it at 900 px: the verdict first, every text at
    least 4.5:1 against its background (WCAG contrast from computed styles),
    the scorecard inside the window with nothing clipped, the heat map sorted
    by distance from 1x."""
    import html as html_lib

    write_reports(_rich_run(), tmp_path, formats=("html",))
    page = tmp_path / "report.html"
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", AUDIT_SCRIPT + "</body>"))
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", "--virtual-time-budget=2000", "--window-size=900,1200"]
    dom = subprocess.run([*flags, "--dump-dom", probe.resolve().as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-ready="1"' in html  # the page's own script ran to the end
    found = json.loads(html_lib.unescape(html.split('<pre id="audit">')[1].split("</pre>")[0]))
    assert found["first_heading"].startswith("Verdict") and found["verdict_before_heatmap"]
    rows = found["verdict_rows"]
    assert len(rows) == 2 and "use torch-flop-counter (reports FLOPs: halve it), exact" in rows[0]
    assert "or within 1%: torchinfo (+1%)" in rows[0]
    assert "fvcore misses 20%: aten.lstm not counted" in rows[0] and "ptflops-aten times out" in rows[0]
    assert "no counter is within 1%" in rows[1] and "torchinfo fails: RuntimeError" in rows[1]
    assert found["checked"] > 200 and found["low"] == [], found["low"]
    assert found["score_right"] <= found["viewport"] == 900 and found["clipped"] == [], found
    heat = found["heat_sorted"]  # thop's column after one click: farthest from 1x first
    assert heat == sorted(heat, reverse=True) and heat[0] > 0
    text = page.read_text()
    assert "; and 6 more" in text  # thop misses 10 things (9 here, 1 in the other model), 4 shown
    assert "and 17 more" in text  # a cause over 20 layers, 3 shown
    assert "<svg" in text and "ptflops-aten" in text
    shot = Path(__file__).parent / "_artifacts" / "report-900.png"
    shot.parent.mkdir(exist_ok=True)
    proc = subprocess.run([*flags, f"--screenshot={shot}", page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=120)
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
