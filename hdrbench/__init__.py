"""hdrbench: benchmark and evaluation suite for single-image HDR reconstruction through exposure stacks.

Layers (imports point down; docs/architecture.md): ``cli`` / ``commands`` / ``api`` / ``bench`` -> ``report``
-> ``evaluate`` -> ``train`` -> ``losses`` -> ``models`` -> ``data`` -> ``metrics`` -> ``imaging``.
"""

__version__ = "0.1.0"
