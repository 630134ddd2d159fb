"""hdrbench.losses (see docs/architecture.md)."""
