"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flopaudit.adapters import backend_names, get_backend
from flopaudit.errors import UserError
from flopaudit.inputs import parse_shape
from flopaudit.zoo.case import ModelCase

if TYPE_CHECKING:
    from flopaudit.execution.refs import CaseRef


def split_list(values: Sequence[str] | None) -> list[str]:
    """``["a,b", "c"] -> ["a", "b", "c"]``: accept both repeated and comma lists."""
    out: list[str] = []
    for v in values or ():
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def add_selection_args(parser: argparse.ArgumentParser) -> None:
    """--models/--tags/--full/--input-shape/--inputs/--backends."""
    parser.add_argument(
        "--models", "-m", nargs="+", metavar="MODEL",
        help="zoo ids or globs ('resnet*'), or module:function returning an nn.Module",
    )
    parser.add_argument("--tags", "-t", nargs="+", metavar="TAG", help="keep only cases with all these tags")
    parser.add_argument("--full", action="store_true", help="the whole zoo instead of the default selection")
    parser.add_argument("--input-shape", metavar="SHAPE", help="input tensor shape, e.g. 1,3,224,224")
    parser.add_argument(
        "--inputs", metavar="MODULE:FUNCTION",
        help="inputs factory returning a tensor, a tuple of args, a dict of kwargs or flopaudit.inputs.ModelInputs",
    )
    parser.add_argument(
        "--backends", "-b", nargs="+", metavar="BACKEND",
        help=f"backends to run (default: all installed): {', '.join(backend_names())}",
    )


def select_from_args(args: argparse.Namespace) -> list[ModelCase]:
    from flopaudit.zoo import select_cases

    shape = parse_shape(args.input_shape) if getattr(args, "input_shape", None) else None
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    cases = select_cases(
        split_list(args.models), split_list(args.tags), full=args.full,
        input_shape=shape, inputs_factory=getattr(args, "inputs", None), shard=shard,
    )
    if not cases:
        raise UserError("no model matches the selection; run 'flopaudit zoo' to list models and tags")
    return cases


def case_refs_from_args(args: argparse.Namespace, cases: Sequence[ModelCase]) -> list[CaseRef]:
    """The selected cases as picklable :class:`CaseRef` objects (with the input override of the arguments)."""
    from flopaudit.execution.refs import CaseRef

    shape = parse_shape(args.input_shape) if getattr(args, "input_shape", None) else None
    return [CaseRef(c.id, shape, getattr(args, "inputs", None)) for c in cases]


def backends_from_args(args: argparse.Namespace) -> list[str]:
    names = split_list(args.backends) or list(backend_names())
    for name in names:
        get_backend(name)  # raises UserError listing the valid names
    return names


def parse_jobs(text: str) -> int:
    """``--jobs``: a positive number of worker processes."""
    try:
        jobs = int(text)
    except ValueError:
        raise UserError(f"invalid --jobs {text!r}: expected a positive integer") from None
    if jobs < 1:
        raise UserError(f"invalid --jobs {text!r}: expected a positive integer")
    return jobs


def parse_gib(text: str) -> float:
    """``--max-memory``: a positive number of GiB."""
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"invalid --max-memory {text!r}: expected GiB, e.g. 8 or 0.5") from None
    if not value > 0:
        raise UserError(f"invalid --max-memory {text!r}: expected a positive number of GiB")
    return value


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UserError(f"invalid --shard {text!r}: expected i/n, e.g. 1/4") from None
    if not (n >= 1 and 1 <= i <= n):
        raise UserError(f"invalid --shard {text!r}: need 1 <= i <= n")
    return i, n
