"""hdrbench.report (see docs/architecture.md)."""
