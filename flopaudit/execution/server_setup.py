"""The fork server's first preload: silence it before it imports torch and the backends.

Imported only by the fork server that :class:`~flopaudit.execution.supervisor.Supervisor`
starts (its first preload module), never by the command line: it points the
server's standard output and error at ``/dev/null``, so what importing the
backends prints (deprecation warnings...) does not reach the terminal. Each
worker forked from the server then points them at its own capture file
(:class:`~flopaudit.execution.worker.OutputCapture`).
"""

from __future__ import annotations

import os

_devnull = os.open(os.devnull, os.O_WRONLY)
for _fd in (1, 2):
    os.dup2(_devnull, _fd)
os.close(_devnull)
