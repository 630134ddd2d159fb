"""One module per ``hdrbench`` sub-command; each exposes ``register(subparsers)``."""
