"""The Sink protocol, where final result records go, and ResumableSink, one that resumes.

A resumable sink is what lets the resume journal (``resume/``) keep any output in step
with itself without knowing its format: the journal stores the sink's committed
position, and on resume asks the sink to cut back to it, read its records back, or stage
a copy that keeps only some of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from .._models import Result


class Sink(Protocol):
    """Writes result records in batches.

    ``write`` may buffer; ``flush(durable=True)`` returns only once everything written so
    far is on stable storage (fsync), which the resume journal relies on. Failures to
    write raise :class:`asyncfetch._errors.OutputError`.
    """

    async def write(self, results: Sequence[Result]) -> None: ...

    async def flush(self, *, durable: bool = False) -> None: ...

    async def aclose(self) -> None: ...


class SavedRecord(NamedTuple):
    """One well-formed record read back from an output: its id, ok flag and stored bytes."""

    id: str
    ok: bool
    data: bytes


# Given a batch of records read back, the ones to keep (a rewrite's choice).
KeepRecords = Callable[[list[SavedRecord]], list[SavedRecord]]


class StagedRewrite(NamedTuple):
    """A rewrite made ready: the output's position once done, and the copy to rename.

    ``copy`` is None when the sink needs no copy (it replaces records by id in place).
    """

    position: int
    copy: Path | None


class ResumableSink(Sink, Protocol):
    """A sink the resume journal can keep in step with itself, whatever its format.

    The position is a number that grows as records are committed (bytes of a file, the
    highest row id of a table); the journal stores it after each durable flush.
    """

    @property
    def path(self) -> Path:
        """The output file."""
        ...

    @property
    def position_unit(self) -> str:
        """What a position counts, for messages: ``bytes`` or ``rows``."""
        ...

    async def committed_position(self) -> int:
        """The position after the last flush."""
        ...

    async def truncate(self, position: int) -> int:
        """Drop, durably, what was written after ``position``; returns how much was dropped."""
        ...

    def read_back(self) -> Iterator[SavedRecord]:
        """The output's well-formed records, in order; torn or damaged ones are skipped.

        Blocking (reads the file): run it off the event loop, with nothing being written.
        """
        ...

    def stage_rewrite(self, keep: KeepRecords, batch_size: int) -> StagedRewrite:
        """Make ready an output holding only the records ``keep`` keeps (blocking).

        Records go to ``keep`` in batches of ``batch_size``. A file sink writes them to a
        copy beside the output and fsyncs it; the caller renames it over the output (then
        reopens the sink). A sink that replaces records by id stages nothing: a dropped
        record stays until a new record with its id replaces it.
        """
        ...


# Which results a store writes to its sink (``--only``); None keeps them all. The journal
# and the summary still count every result.
Keep = Callable[[Result], bool] | None


def keep_only(only: str) -> Keep:
    """The filter of ``--only``: ``"all"`` (None), ``"ok"`` or ``"failed"``."""
    if only == "ok":
        return _is_ok
    if only == "failed":
        return _is_failed
    return None


def _is_ok(result: Result) -> bool:
    return result.ok


def _is_failed(result: Result) -> bool:
    return not result.ok
