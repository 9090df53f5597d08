"""What a running ``fetch`` or ``worker`` keeps beyond its counters, fed by the writer.

Per-host figures always (the summary's host tables, the metrics' per-host throttling);
with ``--report``, every figure of the page. The writer hands each committed result over
after its batch is written (Runner's ``on_result``): nothing here runs inside a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .._models import Result
from .hosts import HostTable

if TYPE_CHECKING:
    from .aggregate import RunAggregate


class RunWatch:
    def __init__(self, *, full_report: bool) -> None:
        # The aggregate (and what it imports) only when a page is asked for.
        self.aggregate: RunAggregate | None = None
        if full_report:
            from .aggregate import RunAggregate

            self.aggregate = RunAggregate()
        self.hosts = self.aggregate.hosts if self.aggregate is not None else HostTable()

    @property
    def on_result(self) -> Callable[[Result], None]:
        if self.aggregate is not None:
            return self.aggregate.add_result
        return self.hosts.add_result
