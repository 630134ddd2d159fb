"""The base class of the baselines' training tasks: recipe sections, the arch, optimisers and one update.

A baseline task is one module in this package that subclasses :class:`BaselineTask`, registers itself in
:data:`hdrbench.train.task.TASKS` under its recipe's ``task`` key and writes only what is specific to its
method: loss defaults, the default learning rate, extra networks (:meth:`BaselineTask.setup`) and the body of
:meth:`~hdrbench.train.task.TrainTask.train_step`. Everything else (reading ``[model]``, ``[optim]``,
``[schedule]`` and ``[loss]``, building the arch, one optimiser per network, zero-grad / backward / step)
is here.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from hdrbench.errors import InputError
from hdrbench.models import build_arch
from hdrbench.train.optim import build_optimizer
from hdrbench.train.task import TrainTask


class BaselineTask(TrainTask):
    """Shared plumbing of a baseline's training task.

    Construction reads the recipe, builds ``recipe["arch"]`` with ``[model]`` as ``self.model``, calls
    :meth:`setup` (extra networks, files), then builds one optimiser per entry of
    :meth:`optimised_networks`. Learning-rate changes are made from the iteration number inside
    ``train_step`` (no scheduler state), so a resumed run follows exactly the same schedule.

    Args:
        recipe: the resolved recipe (``model``, ``optim``, ``schedule`` and ``loss`` tables are optional).
        device: device the networks live on.

    Raises:
        InputError: a ``[loss]`` key the task does not read (named with the recipe and the known keys).
    """

    #: Defaults of the recipe's ``[loss]`` table (a task reads only the keys listed here).
    LOSS_DEFAULTS: dict[str, Any] = {}
    #: Default learning rate when the recipe's ``[optim]`` table has no ``lr``.
    LR = 1e-4
    #: Checkpoint name of the arch when it trains as one network (tasks with several override ``modules``).
    NETWORK = "model"

    def __init__(self, recipe: Mapping[str, Any], device: torch.device) -> None:
        super().__init__(dict(recipe), torch.device(device))
        self.model_kwargs = dict(recipe.get("model") or {})
        self.optim_cfg = {"name": "adam", "betas": [0.9, 0.999], **dict(recipe.get("optim") or {})}
        self.schedule = dict(recipe.get("schedule") or {})
        unknown = set(recipe.get("loss") or {}) - set(self.LOSS_DEFAULTS)
        if unknown:
            raise InputError(f"recipe {recipe.get('name')!r}: unknown [loss] keys {sorted(unknown)} for task "
                             f"{type(self).__name__}; known: {sorted(self.LOSS_DEFAULTS)}")
        self.loss_cfg = {**self.LOSS_DEFAULTS, **dict(recipe.get("loss") or {})}
        self.model = build_arch(recipe["arch"], **self.model_kwargs).to(self.device)
        self.setup()
        self._opts = {name: self._optimizer(net.parameters()) for name, net in self.optimised_networks().items()}

    def setup(self) -> None:
        """Build what the task needs beyond the arch (critics, fixed encoders, files); nothing by default."""

    def modules(self) -> dict[str, nn.Module]:
        """Every trainable network by checkpoint name; by default the arch alone, named :attr:`NETWORK`."""
        return {self.NETWORK: self.model}

    def optimised_networks(self) -> dict[str, nn.Module]:
        """The networks that get one optimiser each, by optimiser name; by default :meth:`modules`."""
        return self.modules()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    def inference_model(self) -> nn.Module:
        return self.model

    def base_lr(self) -> float:
        """``[optim] lr``, or the task's default :attr:`LR`."""
        return float(self.optim_cfg.get("lr", self.LR))

    def _optimizer(self, params, lr: float | None = None) -> torch.optim.Optimizer:
        return build_optimizer(params, float(lr if lr is not None else self.base_lr()), self.optim_cfg)

    def set_lr(self, lr: float, *names: str) -> None:
        """Set the learning rate of the optimisers ``names`` (all of them when none is given)."""
        for name in names or tuple(self._opts):
            for group in self._opts[name].param_groups:
                group["lr"] = lr

    def step(self, loss: torch.Tensor, *names: str) -> None:
        """One update of the optimisers ``names`` from the scalar ``loss``: zero-grad, backward, step."""
        opts = [self._opts[name] for name in names]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in opts:
            opt.step()
