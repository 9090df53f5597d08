"""Pure per-request decisions: limits, retries, deadlines, redaction, host keys."""
