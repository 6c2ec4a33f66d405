"""pytest plugin: compare a model's FLOP/MAC counts with a golden file.

Installed with flopaudit (entry point ``pytest11``), so a test can write::

    def test_flops(flopaudit_check):
        model = MyNet().eval()
        flopaudit_check(model, torch.randn(1, 3, 64, 64),
                        golden="goldens/mynet.json", backends=("reference",))

The first run fails because there is no golden yet; a run with
``--flopaudit-accept`` (or the environment variable ``FLOPAUDIT_ACCEPT=1``)
writes it. From then on any change of a count (total, per op, per module,
params, status) fails the test with a diff that names the ops that moved
and says whether the backend's or torch's version changed; accepting
rewrites the golden. A relative golden path is taken from the directory of
the test file that uses it (``goldens/mynet.json`` beside ``tests/test_x.py``
is ``tests/goldens/mynet.json``), wherever pytest is started from; messages
show the path from pytest's rootdir.

Tests using the fixture get the ``goldens`` marker (``pytest -m goldens``).
This module imports nothing heavy until the fixture is used.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from flopaudit.switches import switch

ACCEPT_OPTION = "--flopaudit-accept"
ACCEPT_ENV = "FLOPAUDIT_ACCEPT"
MARKER = "goldens"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flopaudit", "FLOP/MAC count goldens")
    group.addoption(
        ACCEPT_OPTION,
        action="store_true",
        default=False,
        help=f"write new or changed counts to the golden files used by flopaudit_check (env {ACCEPT_ENV}=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: compares FLOP/MAC counts with golden files (flopaudit)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "flopaudit_check" in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)


def accept_requested(config: pytest.Config) -> bool:
    """True with ``--flopaudit-accept`` or ``FLOPAUDIT_ACCEPT`` set to 1/true/yes/on."""
    return bool(config.getoption("flopaudit_accept", default=False)) or switch(ACCEPT_ENV, default=False)


class GoldenCheck:
    """The callable the ``flopaudit_check`` fixture returns."""

    def __init__(self, rootdir: Path, nodeid: str, accept: bool, base: Path | None = None) -> None:
        self.rootdir = Path(rootdir)
        self.nodeid = nodeid
        self.accept = accept
        self.base = Path(base) if base is not None else self.rootdir
        """Where relative golden paths start: the test file's directory."""

    def accept_hint(self) -> str:
        node = shlex.quote(self.nodeid)
        return f"to accept the new counts run: pytest {ACCEPT_OPTION} {node}   (or: {ACCEPT_ENV}=1 pytest {node})"

    def __call__(
        self,
        model: Any,
        inputs: Any,
        kwargs: Mapping[str, Any] | None = None,
        *,
        golden: str | os.PathLike[str],
        backends: Sequence[str] = ("reference",),
        name: str | None = None,
        tolerance: float = 0.0,
        isolate: bool = False,
        timeout: float | None = None,
        pass_: str = "inference",
        loss: str | Callable[[Any], Any] | None = None,
        optimizer: str | Callable[[Any], Any] | None = None,
    ) -> list[Any]:
        """Count ``model(*inputs, **kwargs)`` with each backend and compare with ``golden``.

        ``pass_="train"`` counts one training step instead, as ``flopaudit run
        --pass train`` does: the loss ``loss`` (a function of the model's
        output, or ``"module:function"``; default the sum of the floating
        outputs), its backward and, with ``optimizer`` (a ``torch.optim`` name such as
        ``"adamw"``, or your own as in :func:`flopaudit.audit`), one optimizer step; the golden records the pass and
        the MACs of each phase.

        Fails the test (no traceback) when the golden is missing, unreadable
        or differs; with accept on, writes the golden instead. ``tolerance``
        is a relative tolerance per count (0 = exact). ``isolate`` counts in
        a child process bounded by ``timeout`` seconds. Returns the
        :class:`~flopaudit.records.CountResult` of each backend.
        """
        from flopaudit.errors import UserError
        from flopaudit.execution.work import count_one
        from flopaudit.goldens import Golden, GoldenError, compare, goldens_to_json, read_golden_file, write_atomic
        from flopaudit.inputs import ModelInputs
        from flopaudit.passes import pass_of

        if isinstance(backends, str):
            backends = (backends,)
        path = Path(golden)
        if not path.is_absolute():
            path = self.base / path
        model_inputs = ModelInputs.coerce(inputs, kwargs)
        label = name or path.stem
        try:
            spec = pass_of(pass_, loss, optimizer)
            results = [
                count_one(b, model, model_inputs, model_name=label, timeout=timeout, isolate=isolate, pass_=spec)
                for b in backends
            ]
        except UserError as exc:
            pytest.fail(f"flopaudit_check: {exc}", pytrace=False)
        current = [Golden.from_result(r, inputs=model_inputs.describe()) for r in results]
        text = goldens_to_json(current)
        shown = _display(path, self.rootdir)

        if self.accept:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                write_atomic(path, text)
            return results
        if not path.exists():
            lines = [f"flopaudit: no golden file {shown} yet; counted:"]
            if not Path(golden).is_absolute():
                lines.insert(1, f"  (a relative golden path starts at the test file's directory, "
                                f"{_display(self.base, self.rootdir) or '.'})")
            lines += [f"  {_one_line(g)}" for g in current]
            lines.append(self.accept_hint().replace("accept the new counts", "write it"))
            pytest.fail("\n".join(lines), pytrace=False)
        try:
            stored = read_golden_file(path).goldens
        except GoldenError as exc:
            pytest.fail(f"flopaudit: golden {shown}: {exc}\n{self.accept_hint()}", pytrace=False)

        by_backend = {g.backend: g for g in stored}
        blocks: list[str] = []
        for g in current:
            old = by_backend.get(g.backend)
            if old is None:
                blocks.append(f"{label} / {g.backend}: not in the golden (now {_one_line(g)})")
                continue
            diff = compare(old, g, tolerance)
            if diff.drifted:
                blocks.append(diff.render())
        for extra in sorted(set(by_backend) - {g.backend for g in current}):
            blocks.append(f"{label} / {extra}: in the golden but not counted by this test")
        if blocks:
            message = [f"flopaudit: counts differ from golden {shown}"] + blocks + [self.accept_hint()]
            pytest.fail("\n".join(message), pytrace=False)
        return results


def _one_line(g: Any) -> str:
    from flopaudit.units import human

    if g.ok:
        return f"{g.backend}: {human(g.macs)} MACs ({g.macs}), {human(g.params)} params"
    return f"{g.backend}: {g.status} ({g.error})"


def _display(path: Path, rootdir: Path) -> str:
    try:
        return str(path.relative_to(rootdir))
    except ValueError:
        return str(path)


@pytest.fixture
def flopaudit_check(request: pytest.FixtureRequest) -> GoldenCheck:
    """``flopaudit_check(model, inputs, golden=PATH, backends=("reference",))``: fail when counts drift.

    Accept new counts with ``pytest --flopaudit-accept`` or ``FLOPAUDIT_ACCEPT=1``.
    """
    return GoldenCheck(request.config.rootpath, request.node.nodeid, accept_requested(request.config),
                       base=request.node.path.parent)
