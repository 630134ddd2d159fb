"""hdrbench.data (see docs/architecture.md)."""
