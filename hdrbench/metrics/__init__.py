"""hdrbench.metrics (see docs/architecture.md)."""
