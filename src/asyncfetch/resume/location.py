"""Where a resume journal lives and how many ids one lookup may hold.

Kept apart from journal.py, which imports sqlite3 and a thread pool: a run without
``--resume`` still checks for a stranded journal and shares the lookup batch size, and
should not import either to do so.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import ResumeError

JOURNAL_SUFFIX = ".journal"
# SQLite allows 32766 host parameters; lookups stay well below it.
MAX_LOOKUP = 1000


def journal_path(output: str | Path) -> Path:
    """Where the journal of ``output`` lives: ``OUT.journal``, or ``output`` itself."""
    text = str(output)
    return Path(text if text.endswith(JOURNAL_SUFFIX) else text + JOURNAL_SUFFIX)


def refuse_journaled_output(output: str | os.PathLike[str] | None) -> None:
    """Raise ResumeError if ``output`` has a journal: a run without resume would truncate
    it and strand the journal (hours of work lost to a forgotten flag)."""
    if output is None or os.fspath(output) == "-":
        return
    path = journal_path(os.fspath(output))
    if path.exists():
        raise ResumeError(
            f"{os.fspath(output)} belongs to a resumable job ({path.name}): add --resume"
            " (resume=True in the library) to continue it, or delete both files to start"
            " over."
        )
