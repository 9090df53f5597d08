"""Where a resume journal lives and how many ids one lookup may hold.

Kept apart from journal.py, which imports sqlite3 and a thread pool: a run without
``--resume`` still checks for a stranded journal and shares the lookup batch size, and
should not import either to do so.
"""

from __future__ import annotations

from pathlib import Path

JOURNAL_SUFFIX = ".journal"
# SQLite allows 32766 host parameters; lookups stay well below it.
MAX_LOOKUP = 1000


def journal_path(output: str | Path) -> Path:
    """Where the journal of ``output`` lives: ``OUT.journal``, or ``output`` itself."""
    text = str(output)
    return Path(text if text.endswith(JOURNAL_SUFFIX) else text + JOURNAL_SUFFIX)
