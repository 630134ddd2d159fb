"""hdrbench.evaluate (see docs/architecture.md)."""
