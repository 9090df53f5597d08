"""The exit codes of the design, in one place."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_FATAL = 3
EXIT_INTERRUPTED = 130
# The reader of stdout closed the pipe: what a shell reports for a filter that SIGPIPE
# ended (128 + 13), so `set -o pipefail` sees asyncfetch as it sees cat or grep.
EXIT_CLOSED_PIPE = 141
