"""flopaudit match: which counter, unit and convention reproduces a published count.

Counts MODEL with every backend and the reference counter, then ranks every
number those counts can mean (each backend as MACs or FLOPs; the reference's
categories combined: contractions left out, bias, norms, activations and
other extra work added, batch statistics, per batch or per sample) by
closeness to --target, with the command that gives each one. When nothing
is within --within it says what is closest and what is missing.
"""

from __future__ import annotations

import argparse

from flopaudit.errors import UserError

EPILOG = """examples:
  flopaudit match resnet50 --target 4.089G            # torchvision's _ops for ResNet50_Weights (MACs)
  flopaudit match mobilenet_v2 --target 300M --unit MAC
  flopaudit match resnet18 --target 3.6G --unit FLOP
  flopaudit match mypkg.models:build --input-shape 1,3,224,224 --target 4.5G
  flopaudit match resnet50 --convention FLOP:conv,matmul+norm   # one convention's value

conventions (--convention, and the 'reproduce' lines):
  UNIT:CATEGORIES[+EXTRAS][/sample]   from the reference's count: MACs of the contraction
                                      CATEGORIES (conv, matmul, attention, rnn, or all), as MAC
                                      or FLOP (2 per MAC), plus the extra FLOPs of EXTRAS (conv
                                      and matmul = their bias, norm, activation, pool,
                                      elementwise, ..., all; batch-statistics: eval batch norms
                                      priced with batch statistics)
  BACKEND:UNIT[/sample]               a backend's count as MACs, or x 2 as FLOPs

exit status: 0 a value within --within of the target (or --convention printed),
1 nothing within --within, 2 usage error."""


def register(sub: argparse._SubParsersAction) -> None:
    from flopaudit.commands._common import MODES, add_count_args, add_parser

    p = add_parser(sub, "match", __doc__, "find the counter and convention that reproduce a published count",
                   epilog=EPILOG)
    p.add_argument("model", help="zoo id, or module:function (or path/to/file.py:function) with --input-shape/--inputs")
    p.add_argument("--target", "-t", metavar="COUNT", help="the published figure, e.g. 4.5G, 300M, 4.1e9")
    p.add_argument("--unit", choices=("MAC", "FLOP", "AUTO"), default="AUTO", type=str.upper, metavar="MAC|FLOP|auto",
                   help="what the figure counts: MAC, FLOP (2 per multiply-add) or auto (both; default)")
    p.add_argument("--within", default="1%", metavar="REL", help="closeness that counts as a match (default 1%%)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="values shown (default 10)")
    p.add_argument("--convention", metavar="SPEC", help="print the value of one convention (see below)")
    p.add_argument("--input-shape", metavar="SHAPE", help="input tensor shape, e.g. 1,3,224,224")
    p.add_argument("--inputs", metavar="MODULE:FUNCTION", help="inputs factory")
    p.add_argument("--backends", "-b", nargs="+", metavar="BACKEND",
                   help="backends to count with (default: all; the reference always runs)")
    p.add_argument("--mode", choices=MODES, default=None, help="count in this mode (default: the case's own, eval)")
    add_count_args(p)
    p.add_argument("--cache-dir", metavar="DIR", help="result cache (as for flopaudit run)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit import match as m
    from flopaudit.commands._common import backends_from_args, selection_from_args, split_list, strict_inputs
    from flopaudit.commands.snapshot import count_options
    from flopaudit.run import run_audit

    if not args.target and not args.convention:
        raise UserError("match: give --target COUNT (the published figure) or --convention SPEC")
    target = m.parse_target(args.target) if args.target else None
    within = m.parse_fraction(args.within, "--within")
    if args.top < 1:
        raise UserError(f"invalid --top {args.top}: expected a positive number")
    args.backends = split_list(args.backends)
    backends = backends_from_args(args)
    if "reference" not in backends:
        backends = ["reference", *backends]
    args.models, args.tags, args.full = [args.model], None, False
    cases = selection_from_args(args)
    if len(cases) != 1:
        raise UserError(f"match takes one model; {args.model!r} names {len(cases)}: "
                        + ", ".join(c.id for c in cases[:6]) + (" ..." if len(cases) > 6 else ""))
    cache = None
    if not args.no_cache:
        from flopaudit.cache import ResultCache

        cache = ResultCache(args.cache_dir)
    run = run_audit(cases, backends, strict_inputs=strict_inputs(args), cache=cache, mode=args.mode,
                    **count_options(args))
    counts = m.counts_for(run, cases[0].id)
    if args.convention:
        print(m.describe_value(m.evaluate(args.convention, counts), counts, target))
        return 0
    assert target is not None
    units = m.UNITS if args.unit == "AUTO" else (args.unit,)
    result = m.match(counts, target, units, within)
    model_args = [args.model]
    if args.input_shape:
        model_args += ["--input-shape", args.input_shape]
    if args.inputs:
        model_args += ["--inputs", args.inputs]
    print(m.render(result, model_args, args.top))
    return 0 if result.found else 1
