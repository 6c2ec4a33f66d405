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
from flopaudit.reports.render_html import render_html

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


@pytest.mark.parametrize(("conditional", "explained"), [
    ({"grid": 7_000}, True),  # exactly the residual
    ({"grid": 3_000, "table": 4_000}, True),  # all of them together
    ({"grid": 3_000, "table": 9_000}, False),  # neither alone nor together
    ({"grid": 6_999}, False),  # near is not enough
])
def test_a_conditional_cause_is_booked_only_when_it_is_exactly_the_residual(conditional: dict[str, int],
                                                                           explained: bool) -> None:
    from flopaudit.records import CONDITIONAL_CAUSE

    run = _run()
    extra = tuple((CONDITIONAL_CAUSE + k, v) for k, v in conditional.items())
    results = tuple(dataclasses.replace(r, extra=extra) if r.backend == "torchinfo" else r for r in run.results)
    cell = build_report(dataclasses.replace(run, results=results)).cell("net", "torchinfo")
    assert cell is not None
    assert cell.difference == sum(c.macs for c in cell.causes) + cell.residual
    if explained:
        assert cell.residual == 0 and cell.classification == "rule"
        assert {c.rule: c.macs for c in cell.causes if c.rule in conditional} == conditional
    else:
        assert cell.residual == 7_000 and cell.classification == "unexplained"
        assert not [c for c in cell.causes if c.rule in conditional]


def test_top_layers_point_at_the_module_responsible() -> None:
    fv = build_report(_run()).cell("net", "fvcore")
    assert fv is not None and fv.top_layers == (("rnn", -200_000),)


def test_scorecard() -> None:
    scores = {s.backend: s for s in build_report(_run()).scores}
    assert scores["fvcore"].misses == ("aten.lstm not counted",)
    assert scores["torch-flop-counter"].exact_canonical == 1 and scores["torch-flop-counter"].exact_own_rules == 1
    assert scores["torchinfo"].unexplained == 1
    assert scores["ptflops-aten"].ok == 0 and scores["ptflops-aten"].failed == 1
    assert scores["fvcore"].version == "1"


def test_a_backend_without_a_version_reads_as_a_dash_in_the_scorecard() -> None:
    """A backend that is not installed (or whose import package is another's) has no
    version on record: the scorecard says "-" rather than leaving ", MAC" behind."""
    run = _run()
    results = tuple(dataclasses.replace(r, backend_version="") if r.backend == "ptflops-aten" else r
                    for r in run.results)
    report = build_report(dataclasses.replace(run, results=results))
    assert {s.backend: s.version for s in report.scores}["ptflops-aten"] == "-"
    assert "| ptflops-aten | - | MAC |" in render_markdown(report)
    assert "ptflops-aten<span class=\"small\">-, MAC</span>" in render_html(report)


def test_the_heat_maps_farthest_column_is_the_farthest_count() -> None:
    """fvcore's 0.8x is the farthest count of ``net``: the timed-out and the not-applicable
    cells beside it do not stand in its place (their own columns say so); a model no backend
    counted reads a failure's status, one where none applies '-'."""
    import math

    run = _run()
    torchstat = _r("torchstat", None, status=Status.NOT_APPLICABLE, error="feeds one image")
    html = render_html(build_report(dataclasses.replace(run, results=(*run.results, torchstat))))
    assert f'<td data-sort="{abs(math.log2(0.8))}">0.800x</td>' in html
    failed = tuple(r for r in run.results if r.backend in ("reference", "ptflops-aten"))
    assert '<td data-sort="1000000000.0">timeout</td>' in render_html(
        build_report(dataclasses.replace(run, results=(*failed, torchstat))))
    alone = (run.results[0], torchstat)
    assert '<td data-sort="0.0">-</td>' in render_html(build_report(dataclasses.replace(run, results=alone)))


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
  out.viewport = document.documentElement.clientWidth;
  out.page_width = document.documentElement.scrollWidth;
  function clipped(table) { return Array.prototype.filter.call(table.querySelectorAll("th, td"), function (c) {
    return c.scrollWidth > c.clientWidth + 1; }).map(function (c) { return c.textContent.slice(0, 40); }); }
  if (document.getElementById("verdict")) {
    out.verdict_before_heatmap = !!(document.getElementById("verdict").compareDocumentPosition(
      document.getElementById("heatmap")) & Node.DOCUMENT_POSITION_FOLLOWING);
    out.verdict_rows = Array.prototype.map.call(document.querySelectorAll("#verdict-table tbody tr"),
      function (tr) { return tr.innerText; });
    var score = document.getElementById("score-table");
    out.score_right = score.getBoundingClientRect().right;
    out.clipped = clipped(score);
    var heat = document.getElementById("heat-table"), th = heat.tHead.rows[0].cells[3];
    th.click();
    out.heat_sorted = Array.prototype.map.call(heat.tBodies[0].rows, function (r) {
      return parseFloat(r.cells[3].getAttribute("data-sort")); });
  }
  var matrix = document.getElementById("matrix-table");
  if (matrix) {
    out.matrix_right = matrix.getBoundingClientRect().right;
    out.matrix_clipped = clipped(matrix);
    out.cost_tables_right = Math.max.apply(null, Array.prototype.map.call(
      document.querySelectorAll("#cost table, #cost svg"), function (t) { return t.getBoundingClientRect().right; }));
    out.cost_clipped = Array.prototype.concat.apply([], Array.prototype.map.call(
      document.querySelectorAll("#cost table.layers, #cost table.kinds"), clipped));
    var heads = matrix.tHead.rows[0].cells, col = -1;
    for (var k = 0; k < heads.length; k++) { if (heads[k].textContent === "latency") col = k; }
    heads[col].click();
    out.matrix_by_latency = Array.prototype.map.call(matrix.tBodies[0].rows, function (r) {
      return [r.cells[1].textContent, parseFloat(r.cells[col].getAttribute("data-sort"))]; });
    out.roofline_points = Array.prototype.map.call(document.querySelectorAll("svg.roofline"), function (svg) {
      return svg.querySelectorAll("circle.layer").length; });
    out.roofline_inside = Array.prototype.every.call(document.querySelectorAll("svg.roofline circle.layer"),
      function (c) { var box = c.ownerSVGElement.getBoundingClientRect(), r = c.getBoundingClientRect();
        return r.left >= box.left - 1 && r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1; });
  }
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
    found = _audit_page(_rich_run(), tmp_path)
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
    page = tmp_path / "report.html"
    text = page.read_text()
    assert "; and 6 more" in text  # thop misses 10 things (9 here, 1 in the other model), 4 shown
    assert "and 17 more" in text  # a cause over 20 layers, 3 shown
    assert "<svg" in text and "ptflops-aten" in text
    _screenshot(page, "report-900.png")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                  "--virtual-time-budget=2000", "--window-size=900,1200"]


def _audit_page(run: AuditRun, out: Path) -> dict:
    """Write ``run``'s HTML report into ``out``, open a copy with :data:`AUDIT_SCRIPT` in headless Chromium
    at 900 px and return what the script found."""
    import html as html_lib

    write_reports(run, out, formats=("html",))
    probe = out / "probe.html"
    probe.write_text((out / "report.html").read_text().replace("</body>", AUDIT_SCRIPT + "</body>"))
    dom = subprocess.run([_chromium(), *CHROMIUM_FLAGS, "--dump-dom", probe.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-ready="1"' in html  # the page's own script ran to the end
    return json.loads(html_lib.unescape(html.split('<pre id="audit">')[1].split("</pre>")[0]))


def _screenshot(page: Path, name: str, height: int = 1200) -> Path:
    """A screenshot of ``page`` at 900 px under tests/_artifacts (to look at)."""
    shot = Path(__file__).parent / "_artifacts" / name
    shot.parent.mkdir(exist_ok=True)
    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")] + [f"--window-size=900,{height}"]
    proc = subprocess.run([_chromium(), *flags, f"--screenshot={shot}", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000  # a real page, not a blank one
    return shot


def test_leaf_paths_are_those_with_nothing_under_them() -> None:
    import random

    from flopaudit.module_paths import leaf_paths as _leaves

    assert sorted(_leaves({"a", "a.b", "a.b.c", "a-x", "a0", "b", "b.c"})) == ["a-x", "a.b.c", "a0", "b.c"]
    rng = random.Random(0)
    for _ in range(100):
        paths = {".".join(rng.choice(["a", "b", "a-", "0"]) for _ in range(rng.randint(1, 4))) for _ in range(25)}
        naive = sorted(p for p in paths if not any(q.startswith(p + ".") for q in paths))
        assert sorted(_leaves(paths)) == naive


def _costs() -> tuple:
    """Measured costs of two models (layers of every kind, long paths, a layer without FLOPs) and a
    measurement that timed out, with the ceilings they were measured under."""
    from flopaudit.measure.records import Ceilings, LayerCost, ModelCost

    ceil = Ceilings("cpu", "float32", 2, peak_flops=80 * 10**9, bandwidth=12 * 10**9, matmul_n=1024,
                    copy_bytes=128 << 20, device_name="AMD EPYC 7B13 64-Core Processor")
    kinds = ["conv", "depthwise conv", "norm", "activation", "matmul", "attention", "pool", "elementwise"]
    layers = tuple(
        LayerCost(f"blocks.{k}.attention.inner_projection_{k % 3}", ["Conv2d", "BatchNorm2d", "GELU", "Linear"][k % 4],
                  kinds[k % len(kinds)], 1, 40_000 + 9_000 * (k % 7), macs=(k % 5) * 300_000,
                  flops=2 * (k % 5) * 300_000 + 20_000, bytes_read=200_000 + 50_000 * k, bytes_written=100_000)
        for k in range(30)
    ) + (LayerCost("", "Net", "data_movement", 1, 5_000, 0, 0, 0, 0),)
    big = ModelCost("a-model-with-a-rather-long-identifier", Status.OK, "cpu", "float32", 2, 1, "(1x3x224x224)", 2,
                    tuple(1_900_000 + 10_000 * k for k in range(12)), macs=sum(lc.macs for lc in layers),
                    flops=sum(lc.flops for lc in layers), params=11_689_512,
                    bytes_read=sum(lc.bytes_read for lc in layers), bytes_written=sum(lc.bytes_written for lc in layers),
                    peak_memory=53_800_000, memory_method="tensor storages alive at once", layers=layers,
                    layer_passes=4, unattributed_ns=20_000, ceilings=ceil)
    small = ModelCost("net", Status.OK, "cpu", "float32", 2, 1, "(1x3x8x8)", 2, (900_000, 950_000, 1_000_000),
                      macs=REF, flops=2 * REF + 5_000, params=1_000, bytes_read=3_000_000, bytes_written=1_000_000,
                      peak_memory=4_000_000, layers=(LayerCost("conv", "Conv2d", "conv", 1, 700_000, REF, 2 * REF,
                                                               2_000_000, 500_000),
                                                     LayerCost("act", "ReLU", "activation", 1, 250_000, 0, 5_000,
                                                               1_000_000, 500_000)),
                      layer_passes=4, ceilings=ceil)
    hung = ModelCost("hung-model", Status.TIMEOUT, error="measuring did not finish within 600 s; the worker was stopped")
    return big, small, hung


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
@pytest.mark.parametrize("with_counts", [False, True], ids=["cost-only", "run-with-cost"])
def test_cost_section_renders_in_headless_chromium(tmp_path: Path, with_counts: bool) -> None:
    """The cost section at 900 px, alone (flopaudit cost) and after the counts (run --cost): every text at
    least 4.5:1 against its background, the matrix and every cost table inside the window with nothing
    clipped, the matrix sorted by latency on a click, one roofline point per layer with FLOPs and time,
    every point inside its chart."""
    costs = _costs()
    base = _rich_run() if with_counts else AuditRun((), ())
    run = dataclasses.replace(base, costs=costs, cost_weights=(("latency", 0.6), ("memory", 0.4)))
    found = _audit_page(run, tmp_path)
    assert found["first_heading"].startswith("Verdict" if with_counts else "Cost")
    assert found["low"] == [], found["low"]
    assert found["checked"] > (300 if with_counts else 150)
    assert found["page_width"] <= found["viewport"] == 900, found
    assert found["matrix_right"] <= 900 and found["matrix_clipped"] == [], found
    assert found["cost_tables_right"] <= 900 and found["cost_clipped"] == [], found
    by_latency = found["matrix_by_latency"]
    assert [v for _, v in by_latency] == sorted(v for _, v in by_latency)
    assert [m for m, v in by_latency if v >= 0] == ["net", "a-model-with-a-rather-long-identifier"]
    drawable = [sum(1 for lc in c.layers if lc.flops and lc.bytes and lc.time_ns) for c in costs if c.ok]
    assert found["roofline_points"] == drawable == [30, 2] and found["roofline_inside"]
    page = tmp_path / "report.html"
    text = page.read_text()
    assert "score: weights latency=0.6, memory=0.4" in text and "hung-model" in text
    assert "1 layer(s) without FLOPs or time" in text and "and 6 more layers" in text
    if not with_counts:
        _screenshot(page, "cost-900.png", height=2600)


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_a_training_step_report_renders_its_phases_in_headless_chromium(tmp_path: Path) -> None:
    """The phase table of a training-step run reads as the rest of the page: its script runs,
    every text keeps its contrast and nothing is clipped at 900 px."""
    from flopaudit.cli import main
    from flopaudit.results_io import load_results

    counted = tmp_path / "counted"
    assert main(["run", "--models", "user_models:tiny_linear", "--inputs", "user_models:tiny_inputs", "--pass",
                 "train", "--optimizer", "adamw", "--no-isolation", "--no-cache", "--no-progress",
                 "--out", str(counted)]) == 0
    found = _audit_page(load_results(counted / "results.json"), tmp_path / "page")
    assert found["low"] == [] and found["clipped"] == [], found
    text = (tmp_path / "page" / "report.html").read_text()
    assert 'id="phase-table"' in text and "Counted: one training step (loss: sum of outputs, optimizer: adamw)" in text
