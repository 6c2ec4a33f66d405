"""flopaudit snapshot: write golden files, one per (model, backend).

Each file ``<model>--<backend>.json`` (``<model>--<backend>.train.json`` for
a training step, --pass train) holds the counts as integers (total
MACs, the backend's raw total, params, per-op and per-module counts,
unsupported ops) with the backend and torch versions they came from; a count
that failed keeps its status and the first line of its error. Files are
written atomically with sorted keys, so they diff cleanly in version control.
Check them later with ``flopaudit check --goldens DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flopaudit.commands._common import (
    add_count_args,
    add_parser,
    add_selection_args,
    pass_from_args,
    selection_from_args,
    split_list,
    strict_inputs,
)
from flopaudit.errors import UserError
from flopaudit.run_defaults import usable_cores


def register(sub: argparse._SubParsersAction) -> None:
    p = add_parser(sub, "snapshot", __doc__, "write golden count files for regression checks",
                   epilog="example: flopaudit snapshot --models resnet18 --backends fvcore thop --out goldens/")
    add_selection_args(p)
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="directory for the golden files (created)")
    add_count_args(p)
    p.set_defaults(handler=main)


def count_options(args: argparse.Namespace) -> dict:
    """What ``snapshot`` and ``check`` pass to :func:`flopaudit.run.run_audit` from their arguments."""
    return dict(timeout=args.timeout, isolate=not args.no_isolation, max_memory_gb=args.max_memory,
                jobs=1 if args.no_isolation else (args.jobs or usable_cores()))


def resolve_backends(requested: list[str], kind: str = "inference") -> tuple[list[str], list[str]]:
    """(backends to run, notes on skipped ones).

    Named backends must load and be installed (else :class:`UserError`);
    with none named, every backend that loads, is installed and counts
    passes of ``kind`` is used.
    """
    from flopaudit.adapters import get_backend
    from flopaudit.goldens.recount import loadable
    from flopaudit.run import default_backends

    chosen: list[str] = []
    skipped: list[str] = []
    for name in requested or default_backends(kind):
        why = loadable(name)  # UserError for an unknown name
        if why is None and not get_backend(name).available():
            why = get_backend(name).missing_reason()
        if why is None:
            chosen.append(name)
        elif requested:
            raise UserError(f"backend {name!r} cannot count: {why}")
        else:
            skipped.append(f"skipped backend {name}: {why}")
    if not chosen:
        raise UserError("no backend can count here; 'flopaudit backends' shows what is installed")
    return chosen, skipped


def main(args: argparse.Namespace) -> int:
    from flopaudit.goldens import golden_filename, goldens_to_json, write_atomic
    from flopaudit.goldens.recount import snapshot
    from flopaudit.inputs import parse_shape
    from flopaudit.results_io import check_writable
    from flopaudit.units import human

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory")
    step = pass_from_args(args)
    cases = selection_from_args(args)
    backends, skipped = resolve_backends(split_list(args.backends), step.kind)
    for note in skipped:
        print(note, file=sys.stderr)
    check_writable(out)
    shape = parse_shape(args.input_shape) if args.input_shape else None
    goldens = snapshot(cases, backends, input_shape=shape, inputs_factory=args.inputs,
                       strict_inputs=strict_inputs(args), mode=args.mode, pass_=step, **count_options(args))
    for g in goldens:
        path = out / golden_filename(g.model, g.backend, g.pass_.kind)
        text = goldens_to_json([g])
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old != text:
            write_atomic(path, text)
        state = "new" if old is None else "unchanged" if old == text else "updated"
        what = f"{human(g.macs)} MACs" if g.ok else f"{g.status}: {g.error}"
        print(f"{state:<9}  {path}  ({what})")
    return 0
