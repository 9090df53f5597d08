"""Seeing a run: progress, the end-of-run summary."""
