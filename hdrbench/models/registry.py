"""The architecture registry.

Arch modules register builder functions under public names (``ARCHS.register("proposed")``), timm
style: a builder pins one variant's hyper-parameters and returns an ``nn.Module``. Every built
inference model exposes ``kind`` (``"stack"`` or ``"direct"``) and ``predict_stack(ldr, evs)`` and/or
``predict_hdr(ldr)`` so that the evaluation harness treats all archs alike.

Arch modules are imported explicitly (never by scanning file names) the first time the registry is
used, which keeps ``import hdrbench`` light.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch.nn as nn

from hdrbench.registry import Registry

ARCHS: Registry[Callable[..., nn.Module]] = Registry("arch")

#: Modules whose import registers archs.
ARCH_MODULES = (
    "hdrbench.models.proposed",
    "hdrbench.models.baselines",
)

_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for name in ARCH_MODULES:
        importlib.import_module(name)
    _loaded = True


def build_arch(name: str, **kwargs) -> nn.Module:
    """Build the arch registered as ``name`` with keyword overrides."""
    _load()
    return ARCHS.get(name)(**kwargs)


def list_archs(pattern: str | None = None) -> list[str]:
    """Registered arch names (optionally filtered by a glob)."""
    _load()
    return ARCHS.names(pattern)
