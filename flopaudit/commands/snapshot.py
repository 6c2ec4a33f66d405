"""``flopaudit snapshot``: write golden files, one per (model, backend).

Each file ``<model>--<backend>.json`` holds the counts as integers (total
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

from flopaudit.commands._common import add_selection_args, select_from_args, split_list
from flopaudit.errors import UserError
from flopaudit.inputs import parse_shape
from flopaudit.run import DEFAULT_TIMEOUT_S


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "snapshot",
        help="write golden count files for regression checks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: flopaudit snapshot --models resnet18 --backends fvcore thop --out goldens/",
    )
    add_selection_args(p)
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="directory for the golden files (created)")
    add_count_args(p)
    p.set_defaults(handler=main)


def add_count_args(p: argparse.ArgumentParser) -> None:
    """--timeout and --no-isolate, shared with ``flopaudit check``."""
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
        help=f"give up on one count after this long (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--no-isolate", action="store_true",
        help="count in this process (faster; no timeout and no protection against a crashing backend)",
    )


def resolve_backends(requested: list[str]) -> tuple[list[str], list[str]]:
    """(backends to run, notes on skipped ones).

    Named backends must load and be installed (else :class:`UserError`);
    with none named, every backend that loads and is installed is used.
    """
    from flopaudit.adapters import backend_names, get_backend
    from flopaudit.goldens.recount import loadable

    chosen: list[str] = []
    skipped: list[str] = []
    for name in requested or backend_names():
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
    from flopaudit.units import human

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory")
    cases = select_from_args(args)
    backends, skipped = resolve_backends(split_list(args.backends))
    for note in skipped:
        print(note, file=sys.stderr)
    shape = parse_shape(args.input_shape) if args.input_shape else None
    goldens = snapshot(
        cases, backends, input_shape=shape, inputs_factory=args.inputs,
        timeout=args.timeout, isolate=not args.no_isolate,
    )
    for g in goldens:
        path = out / golden_filename(g.model, g.backend)
        text = goldens_to_json([g])
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old != text:
            write_atomic(path, text)
        state = "new" if old is None else "unchanged" if old == text else "updated"
        what = f"{human(g.macs)} MACs" if g.ok else f"{g.status}: {g.error}"
        print(f"{state:<9}  {path}  ({what})")
    return 0
