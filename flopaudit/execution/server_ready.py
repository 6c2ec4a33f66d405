"""The fork server's last preload: work every worker would repeat, done once before forking.

Imported only by the fork server (after torch, the counting code and the
backends): it reads which distribution owns which importable name, which
every worker needs for its manifest (:mod:`flopaudit.execution.manifest`)
and which costs a few hundred milliseconds to read.
"""

from __future__ import annotations

from flopaudit.execution.manifest import warm_up

warm_up()
