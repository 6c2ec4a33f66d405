"""The fork server's first preload: the caller's ``sys.path``, silence, then the imports every worker needs.

Imported only by the fork server that :class:`~flopaudit.execution.supervisor.Supervisor`
starts (its first preload module), never by the command line. It reads what
the supervisor put in :data:`~flopaudit.execution.supervisor.FORK_SERVER_ENV`
for it (and takes it out of the environment the workers inherit):

* the caller's ``sys.path``, as ``spawn`` gives a child (``""`` as the
  working directory): ``multiprocessing`` starts the server as ``python -c``,
  which puts the working directory first, and (on Python 3.11) does not apply
  the caller's path, so a file of the user's named like a module the server
  imports (``profile.py``, which ptflops imports through ``cProfile``;
  ``signal.py``, which the server's own start imports) took its place, and
  the server died before any worker started (the supervisor also sets
  ``PYTHONSAFEPATH`` for that start, which this takes out again);
* the modules to import once for every worker (torch, the counting code,
  the backends), each on its own: one that raises is left for the worker
  that needs it to fail again, as that count's error, where
  ``multiprocessing``'s own preloading lets anything but an ``ImportError``
  kill the server, and with it the run.

Between the two it points the server's standard output and error at
``/dev/null``, so what importing the backends prints (deprecation
warnings...) does not reach the terminal. Each worker forked from the server
then points them at its own capture file
(:class:`~flopaudit.execution.worker.OutputCapture`).
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from flopaudit.execution.supervisor import FORK_SERVER_ENV

_setup = json.loads(os.environ.pop(FORK_SERVER_ENV, "") or "{}")
for _name in _setup.get("unset", ()):  # (``PYTHONSAFEPATH``, set for the server's start only)
    os.environ.pop(_name, None)
if _setup.get("sys_path"):
    sys.path[:] = _setup["sys_path"]

_devnull = os.open(os.devnull, os.O_WRONLY)
for _fd in (1, 2):
    os.dup2(_devnull, _fd)
os.close(_devnull)

for _name in _setup.get("imports", ()):
    try:
        importlib.import_module(_name)
    except (Exception, SystemExit):  # noqa: BLE001 - fails again, as a count's error, in the worker that needs it
        pass
