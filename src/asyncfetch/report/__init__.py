"""Seeing a run: progress, the end-of-run summary, per-host figures, the HTML report and
Prometheus metrics.

Every part reads the same statistics; none of them runs inside the request path.
"""
