"""hdrbench: benchmark and evaluation suite for single-image HDR reconstruction through exposure stacks.

Layers (imports point down): ``cli`` -> ``api`` -> ``report`` -> ``evaluate`` -> ``train`` -> ``models`` /
``losses`` -> ``metrics`` / ``data`` -> ``imaging``.
"""

__version__ = "0.1.0"
