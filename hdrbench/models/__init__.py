"""Networks: the proposed recurrent model and the baselines (see ``build_arch``)."""

from hdrbench.models.registry import ARCHS, build_arch, list_archs

__all__ = ["ARCHS", "build_arch", "list_archs"]
