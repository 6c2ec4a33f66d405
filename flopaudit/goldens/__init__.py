"""Golden snapshots of counts, for catching counting-rule changes in CI.

* :mod:`~flopaudit.goldens.record` - the :class:`Golden` record and its schema;
* :mod:`~flopaudit.goldens.store` - file names, stable JSON, atomic writes;
* :mod:`~flopaudit.goldens.diff` - comparing a fresh count with a golden;
* :mod:`~flopaudit.goldens.recount` - snapshotting and re-counting.

Used by ``flopaudit snapshot``, ``flopaudit check`` and the pytest plugin
(:mod:`flopaudit.pytest_plugin`).
"""

from __future__ import annotations

from flopaudit.goldens.diff import Change, GoldenDiff, compare, percent, summarize
from flopaudit.goldens.record import SCHEMA, SCHEMA_VERSION, SET_SCHEMA, Golden, GoldenError
from flopaudit.goldens.store import (
    GoldenFile,
    golden_filename,
    goldens_to_json,
    list_golden_paths,
    names_from_filename,
    read_golden_file,
    safe_name,
    write_atomic,
    write_goldens,
)

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "SET_SCHEMA",
    "Change",
    "Golden",
    "GoldenDiff",
    "GoldenError",
    "GoldenFile",
    "compare",
    "golden_filename",
    "goldens_to_json",
    "list_golden_paths",
    "names_from_filename",
    "percent",
    "read_golden_file",
    "safe_name",
    "summarize",
    "write_atomic",
    "write_goldens",
]
