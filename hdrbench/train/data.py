"""Training batches from a dataset: seeded scene order, per-scene augmentation, rank sharding.

Augmentation follows the official preprocessing (``dataloader.py``) as a recipe's ``[data]`` table sets it:

* ``resolution``: resize every scene to this size first (official: 256 x 256, Lanczos, aspect not kept);
* ``scale_aug = [low, high]``: random scale factor in (low, high) (official: (1, 2)), bicubic;
* ``crop``: random crop of this size, the same window for the stack and the HDR image (official: 256);
* ``flip``: horizontal flip with probability 0.5 (official: on);
* ``requantize_bits``: round the augmented stack to this many bits (official: 8, its loader resamples
  8-bit images and keeps 8-bit codes; 0, the default, keeps the resampled floats);
* ``evs``: the EVs to keep from each scene's stack (default: all of them);
* ``split`` (default ``"train"``) and ``cache_scenes`` (scenes kept in memory after their first load).

Determinism: the scene order of epoch ``e`` is a permutation drawn from ``(seed, e)``, and the augmentation
of the ``k``-th sample of epoch ``e`` is drawn from ``(seed, e, k)`` alone. The data order is therefore fixed
by ``(epoch, position)``, which the checkpoint stores, so that a resumed run sees exactly the batches an
uninterrupted run sees; and ``W`` ranks with batch ``B`` see, sample for sample, the global batch ``W * B``
of one process (rank ``r`` takes rows ``r*B .. r*B+B-1`` of it).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hdrbench.errors import DatasetError, InputError

# Floor of linear HDR values after resampling (the official loader clips HDR at 1e-6): Lanczos and
# bicubic kernels overshoot and a negative radiance breaks log-domain losses.
HDR_FLOOR = 1e-6


def _pair(value, key: str) -> tuple[int, int] | None:
    if value is None or value is False:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise InputError(f"data.{key} must be an int or [height, width], got {value!r}")


def _bits(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or 1 <= value <= 16):
        raise InputError(f"data.requantize_bits must be 0 (off) or 1..16, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class DataConfig:
    """The resolved ``[data]`` table (sizes are (height, width) in pixels)."""

    split: str = "train"
    resolution: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    flip: bool = False
    scale_aug: tuple[float, float] | None = None
    evs: tuple[float, ...] | None = None
    cache_scenes: int = 64
    requantize_bits: int = 0

    @classmethod
    def from_recipe(cls, data: dict[str, Any] | None) -> "DataConfig":
        """Build from a recipe's ``[data]`` table (missing keys take the defaults above)."""
        data = dict(data or {})
        scale = data.get("scale_aug")
        if scale is True:
            scale = (1.0, 2.0)
        elif not scale:
            scale = None
        else:
            scale = (float(scale[0]), float(scale[1]))
        evs = data.get("evs")
        return cls(
            split=data.get("split", "train"),
            resolution=_pair(data.get("resolution"), "resolution"),
            crop=_pair(data.get("crop"), "crop"),
            flip=bool(data.get("flip", False)),
            scale_aug=scale,
            evs=tuple(float(e) for e in evs) if evs is not None else None,
            cache_scenes=int(data.get("cache_scenes", 64)),
            requantize_bits=_bits(data.get("requantize_bits", 0)),
        )


class SeededSampler:
    """Endless seeded scene order with rank sharding; its state is two integers.

    Args:
        n: number of scenes.
        seed: run seed.
        rank: this process's rank.
        world_size: number of processes.
        shuffle: permute each epoch (otherwise scenes come in order).
    """

    def __init__(self, n: int, *, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        if n <= 0:
            raise DatasetError("the training split has no scenes")
        self.n, self.seed, self.rank, self.world_size, self.shuffle = n, seed, rank, world_size, shuffle
        self.epoch = 0
        self.position = 0
        self._perm_epoch = -1
        self._perm = np.arange(n)

    def permutation(self, epoch: int) -> np.ndarray:
        """Scene order of ``epoch`` (a pure function of ``seed`` and ``epoch``)."""
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle \
                else np.arange(self.n)
            self._perm_epoch = epoch
        return self._perm

    def next_global(self, global_batch: int) -> list[tuple[int, int, int]]:
        """Advance by one global batch; return ``(scene index, epoch, position in epoch)`` per global row."""
        out = []
        for _ in range(global_batch):
            if self.position >= self.n:
                self.epoch += 1
                self.position = 0
            out.append((int(self.permutation(self.epoch)[self.position]), self.epoch, self.position))
            self.position += 1
        return out

    def next_indices(self, batch_size: int) -> list[tuple[int, int, int]]:
        """This rank's ``batch_size`` rows of the next global batch of ``batch_size * world_size`` rows."""
        rows = self.next_global(batch_size * self.world_size)
        return rows[self.rank * batch_size:(self.rank + 1) * batch_size]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "n": self.n, "seed": self.seed,
                "permutation": torch.from_numpy(self.permutation(self.epoch).copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["n"]) != self.n or int(state["seed"]) != self.seed:
            raise InputError(f"sampler state is for {state['n']} scenes and seed {state['seed']}, "
                             f"this run has {self.n} scenes and seed {self.seed}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        if not np.array_equal(self.permutation(self.epoch), state["permutation"].numpy()):
            raise InputError("sampler state: the stored permutation differs from the one this seed draws "
                             "(the data order would not continue exactly)")


def _resize_lanczos(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (..., C, H, W) float32 images to ``size`` with OpenCV's Lanczos-4 (the official loader's choice)."""
    import cv2

    h, w = size
    flat = images.reshape(-1, *images.shape[-3:])
    out = np.empty((flat.shape[0], flat.shape[1], h, w), dtype=np.float32)
    for i, img in enumerate(flat):
        res = cv2.resize(np.ascontiguousarray(img.transpose(1, 2, 0)), (w, h), interpolation=cv2.INTER_LANCZOS4)
        out[i] = res.reshape(h, w, -1).transpose(2, 0, 1)
    return out.reshape(*images.shape[:-2], h, w)


class TrainingData:
    """Batches for the trainer (see :mod:`hdrbench.train.task` for the batch contract).

    Args:
        dataset: an object with ``scenes(split) -> list[str]`` and ``load(split, scene) -> Scene``.
        config: the recipe's ``[data]`` table or a :class:`DataConfig`.
        batch_size: samples per rank and step.
        seed: run seed (fixes scene order and augmentation).
        rank, world_size: this process's place in a distributed run.
    """

    def __init__(self, dataset, config: dict | DataConfig | None, *, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.config = config if isinstance(config, DataConfig) else DataConfig.from_recipe(config)
        # A dataset that simulates its stacks can produce them at the recipe's resolution directly.
        for_training = getattr(dataset, "for_training", None)
        self.dataset = for_training(self.config.resolution) if callable(for_training) else dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.scene_names = list(dataset.scenes(self.config.split))
        if not self.scene_names:
            raise DatasetError(f"dataset {getattr(dataset, 'name', dataset)!r} has no scenes in split "
                               f"{self.config.split!r}")
        self.sampler = SeededSampler(len(self.scene_names), seed=self.seed, rank=rank, world_size=world_size)
        self._cache: OrderedDict[int, tuple[np.ndarray, list[float], np.ndarray | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.scene_names)

    # -- scenes ---------------------------------------------------------------------------------------------
    def _scene(self, index: int) -> tuple[np.ndarray, list[float], np.ndarray | None]:
        """(stack (E, 3, H, W) float32 [0, 1], evs, hdr (3, H, W) float32 or None), resized, EV-selected."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        name = self.scene_names[index]
        scene = self.dataset.load(self.config.split, name)
        if scene.stack is None:
            raise DatasetError(f"scene {name!r} has no exposure stack; training needs stacks")
        stack = np.asarray(scene.stack, dtype=np.float32)
        evs = [float(e) for e in scene.evs]
        if stack.ndim != 4 or stack.shape[1] != 3 or stack.shape[0] != len(evs):
            raise DatasetError(f"scene {name!r}: stack must be (E, 3, H, W) with E = len(evs) = {len(evs)}, "
                               f"got {tuple(stack.shape)}")
        if self.config.evs is not None:
            idx = []
            for ev in self.config.evs:
                hits = [i for i, e in enumerate(evs) if abs(e - ev) < 1e-6]
                if not hits:
                    raise DatasetError(f"scene {name!r} has EVs {evs}; the recipe's data.evs asks for {ev}")
                idx.append(hits[0])
            stack, evs = stack[idx], [evs[i] for i in idx]
        hdr = None if scene.hdr is None else np.asarray(scene.hdr, dtype=np.float32)
        if hdr is not None and hdr.shape != stack.shape[1:]:
            raise DatasetError(f"scene {name!r}: hdr {tuple(hdr.shape)} and stack {tuple(stack.shape)} differ in size")
        if not np.isfinite(stack).all() or (hdr is not None and not np.isfinite(hdr).all()):
            raise DatasetError(f"scene {name!r} contains NaN or Inf values")
        if self.config.resolution is not None and stack.shape[-2:] != self.config.resolution:
            stack = np.clip(_resize_lanczos(stack, self.config.resolution), 0.0, 1.0)
            if hdr is not None:
                hdr = np.maximum(_resize_lanczos(hdr, self.config.resolution), HDR_FLOOR)
        entry = (stack, evs, hdr)
        if self.config.cache_scenes > 0:
            self._cache[index] = entry
            while len(self._cache) > self.config.cache_scenes:
                self._cache.popitem(last=False)
        return entry

    def _augment(self, stack: torch.Tensor, hdr: torch.Tensor | None, epoch: int, position: int):
        """Random scale, crop and flip of one sample, drawn from ``(seed, epoch, position)``; requantisation."""
        rng = np.random.default_rng([self.seed, epoch, position, 1])
        cfg = self.config
        if cfg.scale_aug is not None:
            lo, hi = cfg.scale_aug
            r = rng.uniform(lo, hi)
            h, w = stack.shape[-2:]
            size = (max(1, round(r * h)), max(1, round(r * w)))
            if size != (h, w):
                stack = F.interpolate(stack, size=size, mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
                if hdr is not None:
                    hdr = F.interpolate(hdr[None], size=size, mode="bicubic", align_corners=False)[0]
                    hdr = hdr.clamp_(min=HDR_FLOOR)
        if cfg.crop is not None:
            ch, cw = cfg.crop
            h, w = stack.shape[-2:]
            if ch > h or cw > w:
                raise InputError(f"data.crop {cfg.crop} is larger than the (resized, scaled) scene {(h, w)}")
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            stack = stack[..., top:top + ch, left:left + cw]
            if hdr is not None:
                hdr = hdr[..., top:top + ch, left:left + cw]
        if cfg.flip and rng.random() < 0.5:
            stack = stack.flip(-1)
            if hdr is not None:
                hdr = hdr.flip(-1)
        if cfg.requantize_bits:
            # After the resampling, as the official loader's 8-bit images are: codes k / (2^bits - 1).
            levels = float(2 ** cfg.requantize_bits - 1)
            stack = torch.round(stack * levels) / levels
        return stack.contiguous(), None if hdr is None else hdr.contiguous()

    def sample(self, index: int, epoch: int, position: int) -> tuple[torch.Tensor, list[float], torch.Tensor | None]:
        """One augmented sample: stack (E, 3, h, w), evs, hdr (3, h, w) or None."""
        stack, evs, hdr = self._scene(index)
        t_stack = torch.from_numpy(stack)
        t_hdr = None if hdr is None else torch.from_numpy(hdr)
        t_stack, t_hdr = self._augment(t_stack, t_hdr, epoch, position)
        return t_stack, evs, t_hdr

    def next_batch(self) -> dict[str, Any]:
        """This rank's next batch (CPU tensors): ``stack`` (B, E, 3, h, w), ``evs`` (E,), ``hdr``, ``scene``."""
        rows = self.sampler.next_indices(self.batch_size)
        stacks, hdrs, names, evs0 = [], [], [], None
        for index, epoch, position in rows:
            stack, evs, hdr = self.sample(index, epoch, position)
            name = self.scene_names[index]
            if evs0 is None:
                evs0 = evs
            elif evs != evs0:
                raise DatasetError(f"scene {name!r} has EVs {evs}, another scene of the batch {evs0}; "
                                   "set data.evs in the recipe to select common EVs")
            if stacks and stack.shape != stacks[0].shape:
                raise DatasetError(f"scene {name!r} has size {tuple(stack.shape[-2:])}, another scene of the batch "
                                   f"{tuple(stacks[0].shape[-2:])}; set data.resolution or data.crop in the recipe")
            stacks.append(stack)
            hdrs.append(hdr)
            names.append(name)
        batch: dict[str, Any] = {"stack": torch.stack(stacks), "evs": torch.tensor(evs0, dtype=torch.float32),
                                 "scene": names}
        if all(h is not None for h in hdrs):
            batch["hdr"] = torch.stack(hdrs)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Data-order state (the augmentation needs none: it is a function of the sample's place)."""
        return {"sampler": self.sampler.state_dict(), "batch_size": self.batch_size,
                "world_size": self.sampler.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["batch_size"]) * int(state["world_size"]) != self.batch_size * self.sampler.world_size:
            raise InputError(f"checkpoint was written with a global batch of "
                             f"{state['batch_size']} x {state['world_size']}; this run has "
                             f"{self.batch_size} x {self.sampler.world_size}, so the data order would differ")
        self.sampler.load_state_dict(state["sampler"])
