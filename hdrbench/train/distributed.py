"""Distributed training under ``torchrun``: process-group set-up, rank helpers, gradient synchronisation.

``torchrun --nproc_per_node=N -m hdrbench train ...`` (or ``python -m torch.distributed.run``) sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed`
reads them and joins the group (gloo on CPU, NCCL on CUDA). Without them everything runs in one process
and every helper here is a no-op, so the same code serves one process, many GPUs and many nodes.

Gradient synchronisation. The proposed method's iteration runs several forward passes per backward
(recursion), several backward passes per iteration and one optimiser per network, which the
``DistributedDataParallel`` wrapper does not support (it expects one forward per backward and finds
each parameter's gradient ready once per iteration). The trainer therefore applies DDP's semantics at the
optimiser: rank 0's initial weights are broadcast to every rank, and each optimiser step first replaces
each gradient by its mean over the ranks (one flattened all-reduce per optimiser and dtype). With mean
losses this equals one process training on the global batch, which ``tests/test_train_ddp.py`` checks.
:func:`wrap_ddp` is there for tasks whose networks run one forward per backward and prefer the wrapper
(which overlaps communication with the backward pass).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank from the ``torchrun`` environment variables (defaults: one process)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: str | torch.device = "cpu", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by the ``torchrun`` environment (no-op for one process).

    Args:
        device: ``"cpu"`` (gloo backend) or ``"cuda"`` (NCCL; each process uses GPU ``LOCAL_RANK``).
        timeout_s: collective timeout.

    Returns:
        The :class:`DistInfo` of this process.
    """
    info = env_info()
    if not info.distributed:
        return info
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


def local_device(device: str | torch.device, info: DistInfo) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for CUDA runs, ``device`` otherwise."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", info.local_rank if info.distributed else torch.cuda.current_device())
    return device


def is_active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_active():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (call once at the end of a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def any_true(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True if ``flag`` is true on any rank (all ranks must call it)."""
    if not is_active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
    """Average scalar losses over ranks (for logging; all ranks must call it with the same keys)."""
    if not is_active() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def broadcast_parameters(modules: dict[str, torch.nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank (what DDP does at construction)."""
    if not is_active():
        return
    with torch.no_grad():
        for name in sorted(modules):
            for tensor in list(modules[name].parameters()) + list(modules[name].buffers()):
                dist.broadcast(tensor.data, src=0)


def _average_gradients(params: list[torch.nn.Parameter]) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    world = dist.get_world_size()
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in group:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n


def synchronize_gradients(optimizers: dict[str, torch.optim.Optimizer]) -> list:
    """Make every optimiser average its gradients over ranks before it steps.

    Every rank must step the same optimisers in the same order (true for tasks whose control flow does
    not depend on rank-local data). A parameter whose gradient is ``None`` on one rank must be ``None``
    on all ranks.

    Returns:
        The hook handles (``handle.remove()`` detaches them); empty for one process.
    """
    if not is_active():
        return []
    handles = []
    for name in sorted(optimizers):
        opt = optimizers[name]

        def hook(optimizer, args, kwargs):
            params = [p for group in optimizer.param_groups for p in group["params"]]
            # All ranks must agree on which parameters carry a gradient, or the flat buffers differ in size.
            mask = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8,
                                device=params[0].device if params else "cpu")
            ref = mask.clone()
            dist.broadcast(ref, src=0)
            if not torch.equal(mask, ref):
                raise RuntimeError("distributed training: ranks disagree on which parameters have gradients")
            _average_gradients(params)

        handles.append(opt.register_step_pre_hook(hook))
    return handles


def wrap_ddp(module: torch.nn.Module, device: torch.device, **kwargs) -> torch.nn.Module:
    """Wrap ``module`` in ``DistributedDataParallel`` when distributed (returned as is otherwise).

    For tasks with one forward per backward; see the module docstring for why the trainer does not wrap
    every task's networks itself.
    """
    if not is_active():
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids, **kwargs)
