"""flopaudit cost MODELS...: measured latency, memory traffic and a roofline, per model and per layer.

For each model, in a supervised worker (one at a time, so no timing shares
the machine with other work of the run): the forward latency (the median
of --reps timed passes after --warmup untimed ones, on --threads torch
threads), the canonical FLOPs and MACs, the parameters and the bytes every
operator reads and writes (the reference counter's), the arithmetic
intensity (FLOPs per byte) and the FLOP/s achieved; per layer its own
time (passes with a timer at each module call, among the timed ones),
FLOPs, bytes and intensity; the peak memory of a pass; and the machine's
ceilings on the same device and dtype: a peak FLOP/s from a large matmul,
a bandwidth from a large copy.

It prints the decision matrix across the models, ranked by a score
weighted as --weights says, and writes results.json with the reports
(report.html: the sortable matrix and a roofline per model with each layer
as a point; report.md; report.json) under --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from flopaudit.commands._common import (
    MODES,
    add_parser,
    add_placement_args,
    parse_gib,
    parse_timeout,
    selection_from_args,
    strict_inputs,
)
from flopaudit.errors import UserError
from flopaudit.run_defaults import DEFAULT_COST_TIMEOUT_S

EPILOG = """examples:
  flopaudit cost resnet18 mobilenet_v2 vit_b_16
  flopaudit cost resnet50 --threads 4 --reps 20     # on an otherwise idle machine
  flopaudit cost resnet50 --weights latency=0.7,memory=0.3
  flopaudit cost mypkg.models:build --input-shape 8,3,224,224 --device cuda --dtype bfloat16
--weights columns: flops, macs, params, latency, memory, bytes (lower is better),
achieved, efficiency (higher is better); default flops=1,params=1,latency=1,memory=1.

exit status: 0 done (a model that failed is a row of the matrix), 2 usage error, 130 interrupted.
"""


def _count(text: str, option: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise UserError(f"invalid {option} {text!r}: expected an integer >= {least}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = add_parser(sub, "cost", __doc__, "measure latency, traffic and a roofline per model", epilog=EPILOG)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="zoo ids or globs ('resnet*'), or module:function (or path/to/file.py:function) returning an nn.Module")
    p.add_argument("--models", "-m", dest="more_models", nargs="+", default=[], metavar="MODEL",
                   help="more models, as 'flopaudit run' takes them (the same as MODEL arguments)")
    p.add_argument("--tags", "-t", nargs="+", metavar="TAG", help="keep only cases with all these tags")
    p.add_argument("--input-shape", metavar="SHAPE", help="input tensor shape, e.g. 1,3,224,224")
    p.add_argument("--inputs", metavar="MODULE:FUNCTION",
                   help="inputs factory returning a tensor, a tuple of args, a dict (or any mapping) of kwargs or ModelInputs")
    p.add_argument("--mode", choices=MODES, default="eval", help="measure in this mode (default: eval)")
    add_placement_args(p)
    p.add_argument("--threads", type=lambda t: _count(t, "--threads", 1), default=None, metavar="N",
                   help="torch threads of the measuring worker (default: 1; more time well only on an idle machine)")
    p.add_argument("--warmup", type=lambda t: _count(t, "--warmup", 1), default=None, metavar="N",
                   help="untimed passes after the one that checks the model runs; the first reads the peak memory (default: 1)")
    p.add_argument("--reps", type=lambda t: _count(t, "--reps", 3), default=None, metavar="N",
                   help="timed passes; the latency is their median (default: 10)")
    p.add_argument("--layer-passes", type=lambda t: _count(t, "--layer-passes", 0), default=None, metavar="N",
                   help="passes timed module by module, among the timed ones (default: 3; 0: no per-layer times)")
    p.add_argument("--weights", metavar="COL=W,...", help="the score's weights, e.g. flops=0.6,params=0.4")
    p.add_argument("--out", "-o", default="flopaudit-cost", metavar="DIR",
                   help="where results and reports are written (default: flopaudit-cost)")
    p.add_argument("--timeout", type=parse_timeout, default=120.0, metavar="S",
                   help="time limit in seconds for building and running a model (default: 120)")
    p.add_argument("--cost-timeout", type=parse_timeout, default=DEFAULT_COST_TIMEOUT_S, metavar="S",
                   help=f"time limit in seconds for measuring one model (default: {DEFAULT_COST_TIMEOUT_S:g})")
    p.add_argument("--max-memory", type=parse_gib, default=None, metavar="GB",
                   help="stop a phase that maps more than GB GiB on top of its worker (default: no limit)")
    p.add_argument("--no-isolation", "--no-isolate", dest="no_isolation", action="store_true",
                   help="build and measure in this process: no timeout, no crash protection (debugging)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.set_defaults(handler=main)


def cost_request(args: argparse.Namespace) -> Any:
    """The :class:`~flopaudit.execution.protocol.CostRequest` the arguments ask for."""
    from flopaudit.execution.protocol import CostRequest

    base = CostRequest()
    return CostRequest(
        warmup=base.warmup if args.warmup is None else args.warmup,
        reps=base.reps if args.reps is None else args.reps,
        layer_passes=base.layer_passes if args.layer_passes is None else args.layer_passes,
        timeout=args.cost_timeout,
    )


def main(args: argparse.Namespace) -> int:
    from flopaudit.measure.matrix import parse_weights
    from flopaudit.reports.cost import terminal_text
    from flopaudit.results_io import check_writable

    weights = parse_weights(args.weights) if args.weights else ()
    args.full = False
    args.models = [*args.models, *args.more_models]
    refs = selection_from_args(args)
    request = cost_request(args)
    out = Path(args.out)
    check_writable(out)
    run = measure(args, refs, request, weights)
    print(terminal_text(run.costs, weights))
    from flopaudit.commands.run import write_all

    paths = write_all(run, out)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0


def measure(args: argparse.Namespace, refs: list[Any], request: Any, weights: tuple[tuple[str, float], ...]) -> Any:
    """Measure every selected model, with a line on stderr as each is done."""
    import dataclasses

    from flopaudit.run import run_audit

    started, done = time.monotonic(), [0]

    def progress(cost: Any) -> None:
        done[0] += 1
        if not args.no_progress:
            what = f"{cost.latency_ns / 1e6:.3g} ms" if cost.ok and cost.latency_ns else cost.status.value
            print(f"flopaudit: {cost.model}: {what} ({done[0]}/{len(refs)} models, "
                  f"{time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)

    run = run_audit(refs, [], timeout=args.timeout, isolate=not args.no_isolation, strict_inputs=strict_inputs(args),
                    max_memory_gb=args.max_memory, mode=args.mode, device=args.device, dtype=args.dtype,
                    cost=request, cost_threads=args.threads, cost_progress=progress)
    return dataclasses.replace(run, cost_weights=weights)
