"""Adam with gradient centralisation, the optimiser of the official training code.

Gradient centralisation (Yong et al., ECCV 2020) removes, from each convolution weight gradient, its mean
over every axis but the output-channel axis, so that each filter's gradient sums to zero. The official
code uses the "conv layers only" variant (4-D gradients) and adds L2 weight decay to the gradient before
centralising it, as Adam with ``weight_decay`` does in PyTorch (not the decoupled AdamW decay).

With ``gradient_centralization=False`` the update is exactly :class:`torch.optim.Adam` (no amsgrad).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch


def centralize(grad: torch.Tensor) -> torch.Tensor:
    """Gradient centralisation of a 4-D convolution weight gradient.

    Args:
        grad: (C_out, C_in, kH, kW) gradient.

    Returns:
        ``grad`` minus its mean over (C_in, kH, kW), per output channel; other shapes are returned as they are.
    """
    if grad.dim() != 4:
        return grad
    return grad - grad.mean(dim=(1, 2, 3), keepdim=True)


class AdamGC(torch.optim.Optimizer):
    """Adam with L2 weight decay in the gradient and gradient centralisation of conv weights.

    Update for a parameter ``p`` with gradient ``g`` at step ``t`` (1-based)::

        g <- g + weight_decay * p
        g <- centralize(g)                     # 4-D (conv) weights only, when gradient_centralization
        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: (beta1, beta2); the official configuration uses (0.5, 0.999).
        eps: term added to the denominator.
        weight_decay: L2 coefficient added to the gradient (official: 5e-5).
        gradient_centralization: centralise 4-D weight gradients.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        gradient_centralization: bool = True,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"AdamGC: lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"AdamGC: betas must be in [0, 1), got {betas}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        gradient_centralization=gradient_centralization)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimisation step; ``closure`` re-evaluates the loss as in :class:`torch.optim.Adam`."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise NotImplementedError("AdamGC does not support sparse gradients")
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                if group["gradient_centralization"]:
                    grad = centralize(grad)
                state = self.state[p]
                if not state:
                    # A tensor step (like torch.optim.Adam) so that state_dicts of both load into each other.
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = int(state["step"].item())
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
                bias1 = 1 - beta1**step
                bias2_sqrt = math.sqrt(1 - beta2**step)
                denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(group["eps"])
                p.addcdiv_(exp_avg, denom, value=-group["lr"] / bias1)
        return loss


def build_optimizer(params: Iterable, lr: float, optim: dict | None = None) -> torch.optim.Optimizer:
    """The optimiser a recipe's ``[optim]`` table describes.

    Args:
        params: parameters to optimise.
        lr: learning rate of this network group (recipes set one per group, e.g. ``lr_global``).
        optim: the recipe's ``[optim]`` table: ``name`` (``"adam_gc"``, default, or ``"adam"``), ``betas``,
            ``eps``, ``weight_decay``, ``gradient_centralization``.
    """
    from hdrbench.errors import InputError

    optim = dict(optim or {})
    name = optim.get("name", "adam_gc")
    betas = tuple(optim.get("betas", (0.5, 0.999)))
    eps = float(optim.get("eps", 1e-8))
    wd = float(optim.get("weight_decay", 0.0))
    if name == "adam_gc":
        return AdamGC(params, lr=lr, betas=betas, eps=eps, weight_decay=wd,
                      gradient_centralization=bool(optim.get("gradient_centralization", True)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    raise InputError(f"optim.name must be 'adam_gc' or 'adam', got {name!r}")
