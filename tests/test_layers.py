"""The package's layers: data types at the bottom, orchestration on top, nothing below reaching up.

Each lower module is imported alone in a fresh interpreter; it must pull in
no module of a higher layer, and (for everything the command-line process
uses) no torch.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

ORCHESTRATION = ("flopaudit.run", "flopaudit.execution.supervisor", "flopaudit.commands", "flopaudit.cli")

LOWER = [
    "flopaudit.records",
    "flopaudit.errors",
    "flopaudit.units",
    "flopaudit.run_defaults",
    "flopaudit.switches",
    "flopaudit.inputs",
    "flopaudit.frame",
    "flopaudit.results_io",
    "flopaudit.cache",
    "flopaudit.execution.protocol",
    "flopaudit.execution.manifest",
    "flopaudit.execution.refs",
    "flopaudit.execution.failures",
    "flopaudit.execution.worker",
    "flopaudit.zoo.catalog",
    "flopaudit.reports.explain",
    "flopaudit.reports.cost",
    "flopaudit.goldens",
    "flopaudit.measure",
    "flopaudit.measure.records",
    "flopaudit.measure.matrix",
]
TORCH_FREE = [*LOWER, "flopaudit.run", "flopaudit.execution.supervisor", "flopaudit.cli", "flopaudit.zoo",
              "flopaudit.commands.cost"]


def _imported_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize("module", LOWER)
def test_lower_layers_do_not_reach_up(module: str) -> None:
    reached = sorted(m for m in _imported_by(module) if any(m == o or m.startswith(f"{o}.") for o in ORCHESTRATION))
    assert not reached, f"{module} imports {reached}"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_command_line_modules_import_no_torch(module: str) -> None:
    assert "torch" not in _imported_by(module)


def test_the_command_line_process_imports_no_torch_while_its_workers_count_and_measure(tmp_path: object) -> None:
    """``run`` with ``--cost``: the counting workers, the measuring worker, the reports; torch only there."""
    argv = ["run", "--models", "linear-3d", "--backends", "reference", "thop", "--cost", "--cost-threads", "1",
            "--no-cache", "--no-progress", "--out", str(tmp_path)]
    code = (f"import sys\nfrom flopaudit.cli import main\nassert main({argv!r}) == 0\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "measured on cpu" in proc.stdout and "linear-3d" in proc.stdout
