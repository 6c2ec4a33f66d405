"""``flopaudit run``: count models with every backend, print a table, write reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flopaudit.commands._common import add_selection_args, backends_from_args, select_from_args
from flopaudit.records import CountResult, Status
from flopaudit.run import DEFAULT_TIMEOUT_S, AuditRun, run_audit
from flopaudit.table import format_table
from flopaudit.units import human

EPILOG = """examples:
  flopaudit run --models resnet50
  flopaudit run --models 'resnet*' --backends fvcore thop
  flopaudit run --tags custom
  flopaudit run --models mypkg.models:build --input-shape 1,3,224,224
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
                   help="count in this process (no timeout or crash protection; for debugging)")
    p.add_argument("--shard", metavar="I/N", help="run only the I-th of N deterministic parts of the selection")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    cases = select_from_args(args)
    backends = backends_from_args(args)
    strict = bool(args.input_shape or args.inputs or any(":" in m for m in (args.models or ())))
    total = len(cases) * len(backends)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="count", file=sys.stderr, dynamic_ncols=True, leave=False)

    def progress(model: str, backend: str, result: CountResult | None) -> None:
        if bar is None:
            return
        if result is None:
            bar.set_description(f"{model} / {backend}")
        else:
            bar.update(1)

    try:
        run = run_audit(
            cases, backends, timeout=args.timeout, isolate=not args.no_isolation,
            strict_inputs=strict, progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    print(render_terminal(run, backends))
    paths = write_all(run, Path(args.out))
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0


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
    return "\n".join(lines)
