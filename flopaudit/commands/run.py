"""flopaudit run: count models with every backend, print a table, write reports.

Models are built, run and counted in supervised worker processes, never in
this one: a model that hangs, crashes or prints is a cell's status, not the
end of the run. Each phase (building and running a model, each backend's
count) is limited by --timeout; Ctrl-C stops everything and leaves no
process and no partial file behind.

Models given as module:function are counted in eval mode, zoo cases in
their own mode (eval unless the case says train); --mode eval|train sets
one mode for all.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flopaudit.commands._common import (
    add_count_args,
    add_parser,
    add_placement_args,
    add_selection_args,
    backends_from_args,
    parse_jobs,
    pass_from_args,
    selection_from_args,
    strict_inputs,
)
from flopaudit.errors import UserError
from flopaudit.fail_on import EXIT_CODES, add_fail_on_argument, classes_from_args, report_failures, run_failures
from flopaudit.run_defaults import usable_cores

if TYPE_CHECKING:
    from flopaudit.cache import ResultCache
    from flopaudit.records import AuditRun, CountResult

EPILOG = """examples:
  flopaudit run --models resnet50
  flopaudit run --models 'resnet*' --backends fvcore thop
  flopaudit run --tags custom
  flopaudit run --models mypkg.models:build --input-shape 1,3,224,224
  flopaudit run --jobs 8 --shard 1/2 --out part1   # then: flopaudit merge part1 part2 --out all
  flopaudit run --meta --models mypkg.models:build_7b --inputs mypkg.models:tokens
  flopaudit run --models vit_b_16 --device cuda --dtype bfloat16 --cost
  flopaudit run --models gpt2 --pass train --optimizer adamw   # one training step
cells show MACs (multiply-accumulates for the whole batch, K/M/G-scaled; every
backend normalised to that unit) and in brackets the ratio to the reference
counter's canonical count; under the table, the verdict for each model.

""" + EXIT_CODES


def register(sub: argparse._SubParsersAction) -> None:
    p = add_parser(sub, "run", __doc__, "audit models on all backends", epilog=EPILOG)
    add_selection_args(p)
    p.add_argument("--out", "-o", default="flopaudit-report", metavar="DIR",
                   help="where reports are written (default: flopaudit-report)")
    add_count_args(p)
    p.add_argument("--shard", metavar="I/N", help="run only the I-th of N deterministic parts of the selection")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="count on a Dask cluster, e.g. tcp://host:8786, instead of local workers "
                        "(needs flopaudit[parallel]; the workers need flopaudit and the models' modules)")
    p.add_argument("--cache-dir", metavar="DIR", help="result cache (default: $XDG_CACHE_HOME/flopaudit or ~/.cache/flopaudit)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    p.add_argument("--cache-env", action="append", default=[], metavar="NAME",
                   help="an environment variable that changes how your models are built, made part of the cache "
                        "key (repeatable; TIMM_*, HF_*, TRANSFORMERS_*, TORCH_* and PYTORCH_* always are)")
    p.add_argument("--meta", action="store_true",
                   help="build models on the meta device and count without allocating weights "
                        "(backends that cannot count there are 'not applicable')")
    add_placement_args(p)
    p.add_argument("--cost", action="store_true",
                   help="also measure each model's latency, traffic and per-layer time after the counts, one model "
                        "at a time (the cost section of the reports; see 'flopaudit cost --help')")
    p.add_argument("--cost-threads", type=parse_jobs, default=None, metavar="N",
                   help="torch threads for --cost (default: 1; more time well only on an idle machine)")
    p.add_argument("--weights", metavar="COL=W,...", help="with --cost: the decision matrix's weights, "
                                                          "e.g. flops=0.6,params=0.4")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    add_fail_on_argument(p, None)
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit.results_io import check_writable

    fail_on = classes_from_args(args)
    pass_from_args(args)  # a bad --pass/--loss/--optimizer combination is a usage error, before anything else
    weights = check_cost_args(args)
    refs = selection_from_args(args)
    backends = backends_from_args(args)
    out = Path(args.out)
    check_writable(out)
    cache = None
    if not args.no_cache:
        from flopaudit.cache import ResultCache

        cache = ResultCache(args.cache_dir, tuple(args.cache_env))
    run = count(args, refs, backends, cache)
    if weights:
        import dataclasses

        run = dataclasses.replace(run, cost_weights=weights)
    from flopaudit.table import terminal_width

    print(render_terminal(run, backends, terminal_width()))
    if run.costs:
        from flopaudit.reports.cost import terminal_text

        print("\n" + terminal_text(run.costs, run.cost_weights))
    paths = write_all(run, out)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    if cache is not None:
        print(cache.summary())
    return report_failures(run_failures(run, fail_on), fail_on)


def check_cost_args(args: argparse.Namespace) -> tuple[tuple[str, float], ...]:
    """--meta with another device, --cost on the meta device, on Dask or with --pass train, --weights without
    --cost: usage errors.
    Returns the parsed --weights."""
    from flopaudit.measure.matrix import parse_weights

    if args.meta and args.device != "cpu":
        raise UserError(f"--meta builds models on the meta device: it cannot be combined with --device {args.device}")
    if args.cost and (args.meta or args.dask_scheduler):
        raise UserError(f"--cost measures real passes: it cannot be combined with "
                        f"{'--meta' if args.meta else '--dask-scheduler'}")
    if args.cost and pass_from_args(args).train:
        raise UserError("--cost measures forward passes: it cannot be combined with --pass train")
    if args.weights and not args.cost:
        raise UserError("--weights weighs the decision matrix of --cost: add --cost")
    return parse_weights(args.weights) if args.weights else ()


def count(args: argparse.Namespace, refs: list[Any], backends: list[str], cache: ResultCache | None) -> AuditRun:
    """Run the counts the arguments ask for, with progress on stderr."""
    from flopaudit.run import run_audit

    progress = Progress(len(refs), len(backends), enabled=not args.no_progress)
    options = dict(timeout=args.timeout, isolate=not args.no_isolation, strict_inputs=strict_inputs(args),
                   progress=progress, cache=cache, max_memory_gb=args.max_memory,
                   meta=getattr(args, "meta", False), mode=args.mode, device=getattr(args, "device", "cpu"),
                   dtype=getattr(args, "dtype", "float32"), pass_=pass_from_args(args))
    if getattr(args, "cost", False):
        from flopaudit.execution.protocol import CostRequest
        from flopaudit.run_defaults import DEFAULT_COST_TIMEOUT_S

        options.update(cost=CostRequest(timeout=DEFAULT_COST_TIMEOUT_S), cost_threads=args.cost_threads,
                       cost_progress=progress.cost)
    try:
        if getattr(args, "dask_scheduler", None):
            from flopaudit.execution.dask import dask_client

            with dask_client(args.dask_scheduler) as client:
                return run_audit(refs, backends, executor=client.get_executor(pure=False), **options)
        jobs = 1 if args.no_isolation else (args.jobs or usable_cores())
        return run_audit(refs, backends, jobs=jobs, **options)
    finally:
        progress.close()


class Progress:
    """A progress bar on a terminal; in a log, one line per model when its last count is in."""

    def __init__(self, models: int, backends: int, *, enabled: bool = True) -> None:
        self.total, self.per_case, self.done = models * backends, backends, 0
        self.bar = None
        self.per_model: dict[str, list[CountResult]] = {}
        self.started = time.monotonic()
        self.lines = enabled and not sys.stderr.isatty()
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="count", file=sys.stderr, dynamic_ncols=True, leave=False)

    def __call__(self, model: str, backend: str, result: CountResult | None) -> None:
        if result is None:
            if self.bar is not None:
                self.bar.set_description(f"{model} / {backend}")
            return
        self.done += 1
        if self.bar is not None:
            self.bar.set_description(f"{model} / {backend}")
            self.bar.update(1)
        results = self.per_model.setdefault(model, [])
        results.append(result)
        if self.lines and len(results) == self.per_case:
            ok = sum(r.ok for r in results)
            print(f"flopaudit: {model}: {ok}/{self.per_case} counted ({self.done}/{self.total} counts, "
                  f"{time.monotonic() - self.started:.1f} s)", file=sys.stderr, flush=True)

    def cost(self, cost: Any) -> None:
        """A model's cost is in (``--cost``)."""
        if self.bar is not None:
            self.bar.set_description(f"{cost.model} / cost")
        elif self.lines:
            print(f"flopaudit: {cost.model}: cost {cost.status.value} ({time.monotonic() - self.started:.1f} s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    from flopaudit.records import Status
    from flopaudit.units import human

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


def render_terminal(run: AuditRun, backends: list[str], width: int | None = None) -> str:
    """The model x backend MACs table, then one line per failed count and the verdict.
    With ``width`` (the terminal's), the table's backend columns come in blocks that fit it
    and the verdict is wrapped to it (at most 120 characters)."""
    import textwrap

    from flopaudit.records import Status
    from flopaudit.table import format_table_blocks

    models = list(dict.fromkeys(r.model for r in run.results))
    rows = []
    for m in models:
        ref_r = run.result(m, "reference")
        ref = ref_r.macs if ref_r and ref_r.ok else None
        rows.append([m] + [_cell(run.result(m, b), ref) for b in backends])
    step = dict(run.environment).get("pass")
    corner = "model \\ training-step MACs" if step else "model \\ MACs"
    lines = [format_table_blocks([corner] + backends, rows, align="l" + "r" * len(backends), width=width)]
    if step:
        lines.insert(0, f"counted: one {step}")
    problems = [r for r in run.results if r.status is not Status.OK]
    if problems:
        lines.append("")
        failed = {c.id: c.error for c in run.cases if c.error}
        for line in problem_lines(problems, failed):
            lines += textwrap.wrap(line, width, subsequent_indent="    ") if width else [line]
    if any(r.backend == "reference" and r.ok for r in run.results):
        summary = explanation_summary(run, width)
        if summary:
            lines += ["", summary]
    return "\n".join(lines)


def problem_lines(problems: list[CountResult], failed_models: Mapping[str, str] | None = None) -> list[str]:
    """One line per failed count (``model / backend: status: first line``), except that a backend
    failing the same way on several models is one line naming them (a backend that is not
    installed, a rule of thumb that needs token ids: the same reason for every model), and a
    model that failed itself (``failed_models``: model -> its error) is one line for all its counts."""
    same: dict[tuple[str, str, str], list[str]] = {}
    lines = []
    said: set[str] = set()
    for r in problems:
        first = (r.error or "").strip().splitlines()[0] if r.error else ""
        if failed_models and r.error and r.error == failed_models.get(r.model):
            if r.model not in said:
                said.add(r.model)
                lines.append(f"{r.model} / every backend: {r.status.value}: {first}")
            continue
        same.setdefault((r.backend, r.status.value, first), []).append(r.model)
    for (backend, status, first), models in same.items():
        if len(models) == 1:
            lines.append(f"{models[0]} / {backend}: {status}: {first}")
            continue
        shown = ", ".join(models[:3]) + (f" and {len(models) - 3} more" if len(models) > 3 else "")
        lines.append(f"{backend}: {status} on {len(models)} models ({shown}): {first}")
    return lines


def explanation_summary(run: AuditRun, width: int | None = None) -> str:
    """The verdict per model and how many cells of each classification, wrapped to ``width``
    (at most :data:`~flopaudit.reports.verdict.FOOTER_WIDTH`)."""
    from flopaudit.reports import build_report
    from flopaudit.reports.verdict import FOOTER_WIDTH, footer

    return footer(build_report(run), min(width or FOOTER_WIDTH, FOOTER_WIDTH))
