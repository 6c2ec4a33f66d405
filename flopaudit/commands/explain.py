"""flopaudit explain MODEL --backend B: why B disagrees with the reference on MODEL.

The model is counted now (in supervised workers, like flopaudit run), or
read from an earlier run's results with --results.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flopaudit.commands._common import MODES, add_count_args, add_parser, add_pass_args

if TYPE_CHECKING:
    from flopaudit.reports.model import Cause, CellExplanation


def register(sub: argparse._SubParsersAction) -> None:
    p = add_parser(sub, "explain", __doc__, "explain one (model, backend) difference")
    p.add_argument("model", help="zoo id, or module:function (or path/to/file.py:function) with --input-shape/--inputs")
    p.add_argument("--backend", "-b", required=True, nargs="+", help="backend(s) to explain")
    p.add_argument("--results", metavar="RESULTS.json", help="explain from an earlier run instead of counting now")
    p.add_argument("--input-shape", metavar="SHAPE", help="input tensor shape, e.g. 1,3,224,224")
    p.add_argument("--inputs", metavar="MODULE:FUNCTION", help="inputs factory")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="the model's mode, train() or eval(), not what is counted (--pass) "
                        "(default: the case's own, eval; train with --pass train)")
    add_pass_args(p)
    add_count_args(p)
    p.add_argument("--tolerance", type=float, default=0.0, metavar="REL",
                   help="relative difference still classified as agreeing (default: 0, exact)")
    p.set_defaults(handler=main)


def _signed(n: int) -> str:
    from flopaudit.units import human

    return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n))


def _causes(causes: Sequence[Cause], amount: Callable[[int], str]) -> list[str]:
    """One line per cause, then up to five of its layers, amounts written by ``amount``."""
    lines = []
    for cause in causes:
        lines.append(f"  - {cause.kind}: {cause.rule}: {amount(cause.macs)}")
        lines += [f"      {path or '<root>'}: {amount(n)}" for path, n in cause.layers[:5]]
        more = len(cause.layers[5:]) + cause.more_layers
        if more:
            lines.append(f"      ... and {more} more layer{'s' if more != 1 else ''}")
    return lines


def format_explanation(c: CellExplanation) -> str:
    """A few plain lines for the terminal."""
    from flopaudit.units import human

    lines = [f"{c.model} / {c.backend}: {c.classification}"]
    if c.status != "ok":
        lines.append(f"  {c.status}: {c.error or ''}".rstrip())
        return "\n".join(lines)
    lines.append(f"  backend   {human(c.backend_macs)} MACs")
    lines.append(f"  reference {human(c.reference_macs)} MACs (canonical)")
    if c.difference is not None:
        ratio = f" ({c.ratio:.4f}x)" if c.ratio is not None else ""
        lines.append(f"  difference {_signed(c.difference)}{ratio}")
    if c.predicted_macs is not None:
        lines.append(f"  reference under {c.backend}'s rules: {human(c.predicted_macs)} MACs")
        declared = c.backend_macs - c.predicted_macs - c.residual if c.backend_macs is not None else 0
        if declared:  # causes the backend's own output declares (work recorded twice, say), beyond its rules
            lines.append(f"  and what {c.backend} declared of its own count: {_signed(declared)} "
                         f"({human(c.predicted_macs + declared)} MACs in all)")
    lines += _causes(c.causes, _signed)
    if c.residual:
        lines.append(f"  - residual not explained by the rules: {_signed(c.residual)}")
        for path, macs in c.top_layers:
            lines.append(f"      {path or '<root>'}: {_signed(macs)}")
    for note in c.notes:
        lines.append(f"  note: {note}")
    p = c.params
    if p is not None:
        lines.append(f"  parameters: backend {p.backend_params:,}, reference {p.reference_params:,} ({p.classification})")
        lines += _causes(p.causes, lambda n: f"{n:+,}")
        if p.residual:
            lines.append(f"  - residual not explained by the rules: {p.residual:+,}")
        for key, value in p.memory:
            lines.append(f"  memory estimate {key}: {value:,}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from flopaudit.adapters import get_backend
    from flopaudit.commands._common import pass_from_args
    from flopaudit.errors import UserError
    from flopaudit.reports import build_report

    backends = [b for b in args.backend if b != "reference"]
    for b in backends:
        get_backend(b)
    step = pass_from_args(args)
    if args.results:
        from flopaudit.results_io import load_results

        run = load_results(args.results)
        if not any(r.model == args.model for r in run.results):
            raise UserError(f"model {args.model!r} is not in {args.results}")
    else:
        from flopaudit.commands._common import selection_from_args, strict_inputs
        from flopaudit.commands.snapshot import count_options
        from flopaudit.run import run_audit

        args.models, args.tags, args.full = [args.model], None, False
        refs = selection_from_args(args)
        run = run_audit(refs[:1], ["reference", *backends], strict_inputs=strict_inputs(args), mode=args.mode,
                        pass_=step, **count_options(args))
    report = build_report(run, args.tolerance)
    for b in backends:
        cell = report.cell(args.model, b)
        if cell is None:
            raise UserError(f"no result for model {args.model!r} and backend {b!r}")
        print(format_explanation(cell))
    return 0
