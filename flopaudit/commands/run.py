"""``flopaudit run``: count models with every backend, print a table, write reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flopaudit.commands._common import (
    add_selection_args,
    backends_from_args,
    case_refs_from_args,
    parse_gib,
    parse_jobs,
    select_from_args,
)
from flopaudit.records import CountResult, Status
from flopaudit.run import DEFAULT_TIMEOUT_S, AuditRun, run_audit
from flopaudit.table import format_table
from flopaudit.units import human

EPILOG = """examples:
  flopaudit run --models resnet50
  flopaudit run --models 'resnet*' --backends fvcore thop
  flopaudit run --tags custom
  flopaudit run --models mypkg.models:build --input-shape 1,3,224,224
  flopaudit run --jobs 8 --shard 1/2 --out part1   # then: flopaudit merge part1 part2 --out all
  flopaudit run --meta --models mypkg.models:build_7b --inputs mypkg.models:tokens
cells show MACs (multiply-accumulates for the whole batch, K/M/G-scaled; every
backend normalised to that unit) and in brackets the ratio to the reference
counter's canonical count."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="audit models on all backends", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection_args(p)
    p.add_argument("--out", "-o", default="flopaudit-report", metavar="DIR", help="where reports are written")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S", help="per-count time limit")
    p.add_argument("--no-isolation", action="store_true",
                   help="count in this process (no timeout or crash protection; for debugging; implies --jobs 1)")
    p.add_argument("--shard", metavar="I/N", help="run only the I-th of N deterministic parts of the selection")
    p.add_argument("--jobs", "-j", type=parse_jobs, default=None, metavar="N",
                   help="worker processes counting at once (default: the number of cores; 1: serial)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="count on a Dask cluster, e.g. tcp://host:8786, instead of local workers "
                        "(needs flopaudit[parallel]; the workers need flopaudit and the models' modules)")
    p.add_argument("--max-memory", type=parse_gib, default=None, metavar="GB",
                   help="stop a count that maps more than GB GiB on top of its process (status error)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="result cache (default: $XDG_CACHE_HOME/flopaudit or ~/.cache/flopaudit)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    p.add_argument("--meta", action="store_true",
                   help="build models on the meta device and count without allocating weights "
                        "(backends that cannot count there are 'not applicable')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    cases = select_from_args(args)
    backends = backends_from_args(args)
    strict = bool(args.input_shape or args.inputs or any(":" in m for m in (args.models or ())))
    cache = None
    if not args.no_cache:
        from flopaudit.cache import ResultCache

        cache = ResultCache(args.cache_dir)
    total = len(cases) * len(backends)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="count", file=sys.stderr, dynamic_ncols=True, leave=False)

    def progress(model: str, backend: str, result: CountResult | None) -> None:
        if bar is None:
            return
        bar.set_description(f"{model} / {backend}")
        if result is not None:
            bar.update(1)

    options = dict(timeout=args.timeout, isolate=not args.no_isolation, strict_inputs=strict, progress=progress,
                   cache=cache, max_memory_gb=args.max_memory, meta=args.meta)
    try:
        if args.dask_scheduler:
            from flopaudit.execution.pool import dask_client

            with dask_client(args.dask_scheduler) as client:
                run = run_audit(case_refs_from_args(args, cases), backends,
                                executor=client.get_executor(pure=False), **options)
        else:
            jobs = 1 if args.no_isolation else (args.jobs or _default_jobs())
            run = run_audit(case_refs_from_args(args, cases), backends, jobs=jobs, **options)
    finally:
        if bar is not None:
            bar.close()
    print(render_terminal(run, backends))
    paths = write_all(run, Path(args.out))
    print("\nwrote " + ", ".join(str(p) for p in paths))
    if cache is not None:
        print(cache.summary())
    return 0


def _default_jobs() -> int:
    from flopaudit.execution.pool import default_jobs

    return default_jobs()


def write_all(run: AuditRun, out: Path) -> list[Path]:
    """results.json + results.csv, plus the rendered reports when available."""
    from flopaudit.results_io import write_results

    paths = write_results(run, out)
    try:
        from flopaudit.reports import write_reports
    except ImportError:
        return paths
    return paths + write_reports(run, out)


def _cell(r: CountResult | None, ref: int | None) -> str:
    if r is None:
        return ""
    if r.status is Status.OK and r.macs is not None:
        text = human(r.macs)
        if ref:
            text += f" ({r.macs / ref:.3f}x)"
        return text
    if r.status is Status.OK:
        return "does not count MACs"
    return {"error": "ERROR", "timeout": "TIMEOUT", "not applicable": "n/a"}[r.status.value]


def render_terminal(run: AuditRun, backends: list[str]) -> str:
    """The model x backend GMACs table, then one line per failed count."""
    models = list(dict.fromkeys(r.model for r in run.results))
    rows = []
    for m in models:
        ref_r = run.result(m, "reference")
        ref = ref_r.macs if ref_r and ref_r.ok else None
        rows.append([m] + [_cell(run.result(m, b), ref) for b in backends])
    lines = [format_table(["model \\ MACs"] + backends, rows, align="l" + "r" * len(backends))]
    problems = [r for r in run.results if r.status is not Status.OK]
    if problems:
        lines.append("")
        for r in problems:
            first = (r.error or "").strip().splitlines()[0] if r.error else ""
            lines.append(f"{r.model} / {r.backend}: {r.status.value}: {first}")
    if any(r.backend == "reference" and r.ok for r in run.results):
        lines += ["", explanation_summary(run)]
    return "\n".join(lines)


def explanation_summary(run: AuditRun) -> str:
    """One line per classification: how many cells, so users know where to look."""
    from collections import Counter

    from flopaudit.reports import CLASSIFICATIONS, build_report

    counts = Counter(c.classification for c in build_report(run).cells)
    parts = [f"{name} {counts[name]}" for name in CLASSIFICATIONS if counts[name]]
    return ("cells: " + ", ".join(parts) + ". Causes per cell: report.md, or "
            "'flopaudit explain MODEL --backend BACKEND'.")
