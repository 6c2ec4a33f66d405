"""The fork server's last preload: work every worker would repeat, done once before forking.

Imported only by the fork server (after torch, the counting code and the
backends). It reads which distribution owns which importable name, which
every worker needs for its manifest (:mod:`flopaudit.execution.manifest`)
and which costs a few hundred milliseconds to read.

It then moves every object the server holds into the garbage collector's
permanent generation (``gc.freeze()``, as Python's documentation advises
for a process that forks workers). The imports leave some 340,000 objects
behind, and a worker's first full collection walked them all: about 0.2 s,
paid by whichever count came first in each worker (the reference counter's,
or fvcore's trace), and writing to every object's header copied the
server's pages into the worker. Frozen, they are never walked in a worker
(they live as long as it does anyway); the worker's own objects are
collected as before. ``FLOPAUDIT_GC_FREEZE=0`` leaves them unfrozen
(``benchmarks/bench_execution.py`` times both).
"""

from __future__ import annotations

import gc

from flopaudit.execution.manifest import warm_up
from flopaudit.switches import switch

GC_FREEZE_ENV = "FLOPAUDIT_GC_FREEZE"

warm_up()
if switch(GC_FREEZE_ENV, default=True):
    gc.freeze()
