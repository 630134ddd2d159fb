"""hdrbench.imaging (see docs/architecture.md)."""
