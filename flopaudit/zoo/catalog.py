"""The zoo's catalog: every case's id, tags and expected counts, readable without torch.

The command line selects cases, lists them (``flopaudit zoo``) and keys its
result cache without importing torch or running any model code: it reads
``catalog.json`` beside this module. The file is generated from the zoo's
code (:func:`entries_from_registry`) and checked against it by the test
suite; after adding or changing a zoo case, regenerate it with::

    python -m flopaudit.zoo.catalog --write

Selection rules (:func:`select`), shared by the command line and
:func:`flopaudit.zoo.select_cases`:

* ``patterns`` are ids, globs (``resnet*``) or ``module:function`` specs
  (passed through as they are: the worker imports them);
* ``tags`` keep the cases carrying every tag;
* with neither, the default zoo, or with ``full`` every case except those
  tagged :data:`EXPLICIT_ONLY` (the faulty models exist to test fault
  handling; they are run only when named or selected by tag);
* a case whose optional library (``requires``) is not installed is skipped
  from tag, default and full selections with a note; naming it is an error
  that says what to install;
* ``shard=(i, n)`` keeps the i-th of n deterministic parts (by id).
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flopaudit.callables import is_spec
from flopaudit.errors import UserError, did_you_mean

CATALOG_PATH = Path(__file__).with_name("catalog.json")
CATALOG_SCHEMA = "flopaudit.zoo-catalog"
EXPLICIT_ONLY = frozenset({"faulty"})
"""Tags of cases that ``--full`` leaves out: they run only when named or selected by tag."""
INSTALL_HINTS = {
    "timm": "pip install 'flopaudit[zoo]' (or: pip install timm)",
    "transformers": "pip install 'flopaudit[zoo]' (or: pip install transformers)",
}


@dataclass(frozen=True)
class CatalogEntry:
    """What the command line knows about a zoo case without building it."""

    id: str
    tags: tuple[str, ...] = ()
    default: bool = False
    expected_macs: int | None = None
    expected_params: int | None = None
    description: str = ""
    seed: int = 0
    train: bool = False
    requires: tuple[str, ...] = ()
    """Import names of optional libraries the case needs (``timm``, ``transformers``)."""
    source: str = ""
    """The zoo family that defines it (:data:`flopaudit.zoo.FAMILIES`): a worker imports only that one."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"], d["requires"] = list(self.tags), list(self.requires)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CatalogEntry:
        return cls(**{**d, "tags": tuple(d.get("tags", ())), "requires": tuple(d.get("requires", ()))})


@dataclass(frozen=True)
class Selection:
    """The chosen zoo entries and ``module:function`` specs, in order, with notes on what was skipped."""

    entries: tuple[CatalogEntry | str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def ids(self) -> list[str]:
        return [e if isinstance(e, str) else e.id for e in self.entries]


@functools.lru_cache(maxsize=1)
def load_catalog() -> tuple[CatalogEntry, ...]:
    """The catalog's entries, in registration order."""
    data = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    if data.get("schema") != CATALOG_SCHEMA:
        raise ValueError(f"{CATALOG_PATH} is not a flopaudit zoo catalog")
    return tuple(CatalogEntry.from_dict(d) for d in data["cases"])


def get_entry(case_id: str) -> CatalogEntry:
    """The entry of ``case_id``; a user error naming the command that lists them if unknown."""
    for entry in load_catalog():
        if entry.id == case_id:
            return entry
    raise UserError(f"unknown model {case_id!r}{did_you_mean(case_id, (e.id for e in load_catalog()))}; "
                    "run 'flopaudit zoo' to list the valid ones")


def missing_requirement(entry: CatalogEntry) -> str | None:
    """The first library ``entry`` needs that is not installed (checked without importing it)."""
    for name in entry.requires:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return name
    return None


def select(
    patterns: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    *,
    full: bool = False,
    shard: tuple[int, int] | None = None,
    catalog: Sequence[CatalogEntry] | None = None,
) -> Selection:
    """Choose entries by the rules in the module docstring (from ``catalog``, default :func:`load_catalog`)."""
    if catalog is None:
        catalog = load_catalog()
    chosen: list[CatalogEntry | str] = []
    named: set[str] = set()
    if patterns:
        for pattern in patterns:
            if is_spec(pattern):
                chosen.append(pattern)
                continue
            matched = [e for e in catalog if fnmatch.fnmatchcase(e.id, pattern)]
            if not matched:
                close = did_you_mean(pattern, (e.id for e in catalog))
                if close:
                    raise UserError(f"unknown model {pattern!r}{close}; 'flopaudit zoo' lists them all")
                valid = ", ".join(e.id for e in catalog[:12])
                raise UserError(
                    f"unknown model {pattern!r}; valid ids include {valid}, ... ('flopaudit zoo' lists all)"
                )
            if pattern in {e.id for e in matched}:
                named.add(pattern)
            chosen += matched
    elif tags:
        chosen = list(catalog)
    else:
        chosen = [e for e in catalog if not EXPLICIT_ONLY & set(e.tags)] if full else [e for e in catalog if e.default]
    if tags:
        known = {t for e in catalog for t in e.tags}
        unknown = [t for t in tags if t not in known]
        if unknown:
            raise UserError(f"unknown tag(s) {', '.join(unknown)}; valid tags: {', '.join(sorted(known))}")
        chosen = [e for e in chosen if isinstance(e, str) or set(tags) <= set(e.tags)]
    unique = list({(e if isinstance(e, str) else e.id): e for e in chosen}.values())
    kept: list[CatalogEntry | str] = []
    skipped: dict[str, list[str]] = {}
    for e in unique:
        lib = None if isinstance(e, str) else missing_requirement(e)
        if lib is None:
            kept.append(e)
        elif isinstance(e, CatalogEntry) and e.id in named:
            raise UserError(f"model {e.id!r} needs {lib}, which is not installed: {INSTALL_HINTS.get(lib, lib)}")
        else:
            skipped.setdefault(lib, []).append(e.id)
    notes = tuple(
        f"skipped {len(ids)} model(s) that need {lib}, which is not installed: {INSTALL_HINTS.get(lib, lib)}"
        for lib, ids in skipped.items()
    )
    if shard is not None:
        index, total = shard
        ordered = sorted(kept, key=lambda e: e if isinstance(e, str) else e.id)
        kept = [e for k, e in enumerate(ordered) if k % total == index - 1]
    return Selection(tuple(kept), notes)


# -- generation ----------------------------------------------------------------

def entries_from_registry() -> list[CatalogEntry]:
    """Entries built from the zoo's code (imports torch and every zoo module); an id given by two
    families is an error, as it is to the registry."""
    from flopaudit.zoo import FAMILIES, family_cases

    entries = [entry_of(c, source) for source in FAMILIES for c in family_cases(source).values()]
    sources: dict[str, str] = {}
    for e in entries:
        if sources.setdefault(e.id, e.source) != e.source:
            raise ValueError(f"duplicate zoo case id {e.id!r} in {sources[e.id]} and {e.source}")
    return entries


def entry_of(case: Any, source: str = "") -> CatalogEntry:
    """The catalog entry of a :class:`~flopaudit.zoo.case.ModelCase` (from family ``source``)."""
    return CatalogEntry(
        id=case.id, tags=tuple(sorted(case.tags)), default=case.default, expected_macs=case.expected_macs,
        expected_params=case.expected_params, description=case.description, seed=case.seed, train=case.train,
        requires=tuple(case.requires), source=source,
    )


def catalog_text(entries: Sequence[CatalogEntry]) -> str:
    doc = {
        "schema": CATALOG_SCHEMA,
        "note": "generated by 'python -m flopaudit.zoo.catalog --write' from the zoo's code; do not edit",
        "cases": [e.to_dict() for e in entries],
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flopaudit.zoo.catalog [--write]``: check (exit 1 if stale) or rewrite the catalog."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = catalog_text(entries_from_registry())
    current = CATALOG_PATH.read_text(encoding="utf-8") if CATALOG_PATH.exists() else ""
    if "--write" in args:
        if text != current:
            CATALOG_PATH.write_text(text, encoding="utf-8")
            print(f"wrote {CATALOG_PATH}")
        else:
            print(f"{CATALOG_PATH} is up to date")
        return 0
    if text != current:
        print(f"{CATALOG_PATH} is stale: run 'python -m flopaudit.zoo.catalog --write'")
        return 1
    print(f"{CATALOG_PATH} is up to date")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
