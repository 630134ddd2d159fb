"""The embedded ``synthetic`` dataset: procedural HDR scenes simulated into 7-exposure stacks.

Each scene is rendered by :func:`hdrbench.data.scenes.render_scene` at a fixed seed, then passed
through the camera model (:func:`hdrbench.imaging.camera.simulate_stack`) with a random realistic CRF
drawn from a generator seeded with the same seed: EV -3..+3, clipping, 8-bit quantisation.

Generation happens once, into ``$HDRBENCH_CACHE/synthetic/<hash>/`` where the hash covers the
generator version and every parameter, so changing a parameter never reuses stale files. Each scene is
one ``.npz`` (stack as uint8, HDR as float32, the true CRF table) written atomically; ``manifest.json``
is written last and marks the folder complete. A file lock lets several processes (e.g. torchrun ranks)
ask for the same dataset at once: one generates, the others wait and read.

Defaults (card ``datasets/synthetic.toml``): 24 train and 8 test scenes at 128 x 128, seed 0, which
generate in seconds on a CPU.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from hdrbench import __version__
from hdrbench.atomic import atomic_write_bytes, atomic_write_text
from hdrbench.data.base import Dataset, Resolution, Scene
from hdrbench.errors import DatasetError, InputError
from hdrbench.paths import cache_dir

#: Bump when the generation procedure changes (invalidates every cache folder).
GENERATOR_VERSION = "2"
#: Test scenes use seeds far from the training scenes' so the two splits never share a scene.
TEST_SEED_OFFSET = 1_000_000
CRF_TABLE_SIZE = 1024


class SyntheticDataset(Dataset):
    """Procedural scenes with exact ground truth (HDR, stack, CRF).

    Args:
        card, root, resolution, name: see :class:`~hdrbench.data.base.Dataset`. ``resolution`` sets the
            render size (``"native"`` = the card's ``size``); images are rendered at that size, not resized.
        n_train, n_test: number of scenes per split (card defaults 24 and 8).
        seed: base seed (card default 0).
        emor_path: optional EMoR basis file for ``random_crf`` (realistic measured curve family).
        progress: show a tqdm bar while generating; None (default) shows it only on a terminal.
    """

    def __init__(self, card, *, root=None, resolution=None, name=None, n_train: int | None = None,
                 n_test: int | None = None, seed: int | None = None, emor_path: str | Path | None = None,
                 progress: bool | None = None) -> None:
        super().__init__(card, root=None, resolution=resolution, name=name)
        d = card.section("defaults")
        self.n_train = int(d.get("n_train", 24) if n_train is None else n_train)
        self.n_test = int(d.get("n_test", 8) if n_test is None else n_test)
        self.seed = int(d.get("seed", 0) if seed is None else seed)
        if self.n_train < 0 or self.n_test < 0:
            raise InputError(f"synthetic: n_train and n_test must be >= 0, got {self.n_train}, {self.n_test}")
        size = self.resolution.size or (int(d.get("size", 128)),) * 2
        self.resolution = Resolution(tuple(size), how="rendered")
        self.emor_path = Path(emor_path) if emor_path else None
        self.progress = progress

    # -- identity of the cache folder -----------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Every parameter that changes the generated files (hashed into the cache folder name)."""
        from hdrbench.data import scenes as _scenes
        from hdrbench.imaging import camera as _camera

        emor = None
        if self.emor_path is not None:
            if not self.emor_path.is_file():
                raise InputError(f"synthetic: emor_path {self.emor_path} does not exist")
            emor = hashlib.sha256(self.emor_path.read_bytes()).hexdigest()[:16]
        return {
            "generator_version": GENERATOR_VERSION,
            "scenes_version": str(getattr(_scenes, "VERSION", getattr(_scenes, "__version__", ""))),
            "camera_version": str(getattr(_camera, "VERSION", getattr(_camera, "__version__", ""))),
            "hdrbench_version": __version__,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "size": list(self.resolution.size),
            "seed": self.seed,
            "evs": self.evs,
            "emor_sha256": emor,
        }

    @property
    def folder(self) -> Path:
        """``<cache>/synthetic/<hash>``: where this parameter set's scenes live."""
        key = json.dumps(self.params(), sort_keys=True)
        return cache_dir() / "synthetic" / hashlib.sha256(key.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "params": self.params(), "cache": str(self.folder)}

    # -- the interface ------------------------------------------------------------------------------
    def scenes(self, split: str) -> list[str]:
        self._require_split(split)
        n = self.n_train if split == "train" else self.n_test
        return [f"{split}-{i:04d}" for i in range(n)]

    def scene_seed(self, split: str, scene: str) -> int:
        """Seed of one scene (render and CRF): ``seed + i`` (train) or ``seed + 1e6 + i`` (test)."""
        self._require_split(split)
        try:
            prefix, idx = scene.rsplit("-", 1)
            i = int(idx)
        except ValueError:
            raise InputError(f"synthetic: scene name {scene!r} is not '<split>-NNNN'") from None
        n = self.n_train if split == "train" else self.n_test
        if prefix != split or not 0 <= i < n:
            raise InputError(f"synthetic: no scene {scene!r} in split {split!r} ({n} scenes)")
        return self.seed + i + (TEST_SEED_OFFSET if split == "test" else 0)

    def load(self, split: str, scene: str) -> Scene:
        import torch

        seed = self.scene_seed(split, scene)
        self.ensure_generated()
        path = self.folder / split / f"{scene}.npz"
        try:
            with np.load(path) as z:
                stack = torch.from_numpy(z["stack"].astype(np.float32) / 255.0)
                hdr = torch.from_numpy(z["hdr"].astype(np.float32))
                evs = [float(e) for e in z["evs"]]
                crf_table = z["crf_table"].astype(np.float64)
                crf_desc = str(z["crf_desc"])
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"synthetic: cached scene {path} is unreadable ({exc}); delete {self.folder} "
                               "to regenerate") from None
        meta = {"seed": seed, "crf_table": crf_table, "crf": crf_desc, "file": str(path)}
        return Scene(name=scene, stack=stack, evs=evs, hdr=hdr, meta=meta)

    # -- generation ---------------------------------------------------------------------------------
    def ensure_generated(self) -> Path:
        """Generate every missing scene (once, under a file lock) and return the cache folder."""
        folder = self.folder
        manifest = folder / "manifest.json"
        if manifest.is_file():
            return folder
        from filelock import FileLock

        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            if manifest.is_file():  # another process finished while this one waited
                return folder
            todo = [(sp, sc) for sp in ("train", "test") for sc in self.scenes(sp)
                    if not (folder / sp / f"{sc}.npz").is_file()]
            from tqdm.auto import tqdm

            for sp, sc in tqdm(todo, desc=f"generating synthetic scenes into {folder}", unit="scene",
                               disable=True if not todo else (None if self.progress is None else not self.progress)):
                self._generate_one(sp, sc, folder / sp / f"{sc}.npz")
            atomic_write_text(manifest, json.dumps({"params": self.params(), "scenes": {
                sp: self.scenes(sp) for sp in ("train", "test")}}, indent=2, sort_keys=True))
        return folder

    def _generate_one(self, split: str, scene: str, path: Path) -> None:
        import torch

        from hdrbench.data.scenes import render_scene
        from hdrbench.imaging.camera import random_crf, simulate_stack

        seed = self.scene_seed(split, scene)
        h, w = self.resolution.size
        hdr = np.asarray(render_scene(seed, h, w), dtype=np.float32)
        if hdr.shape != (h, w, 3) or not np.isfinite(hdr).all() or hdr.min() < 0:
            raise DatasetError(f"synthetic: render_scene({seed}, {h}, {w}) returned shape {hdr.shape} or "
                               "non-finite/negative values")
        gen = torch.Generator().manual_seed(seed)
        crf = random_crf(gen, emor_path=self.emor_path)
        hdr_t = torch.from_numpy(hdr).permute(2, 0, 1).unsqueeze(0).contiguous()
        stack = simulate_stack(hdr_t, self.evs, crf, generator=gen)[0]  # (E, 3, H, W) in [0, 1], 8-bit levels
        codes = torch.round(stack.double() * 255.0)
        # The camera model quantises to 8 bits, so storing codes is lossless; a drift would mean it did not.
        if float((codes / 255.0 - stack.double()).abs().max()) > 1e-5:
            raise DatasetError("synthetic: simulate_stack output is not on 8-bit levels; cannot store it losslessly")
        table = crf.table(CRF_TABLE_SIZE)
        table = np.asarray(table.detach().cpu().numpy() if hasattr(table, "detach") else table, dtype=np.float64)
        buf = io.BytesIO()
        np.savez_compressed(buf, stack=codes.to(torch.uint8).numpy(), hdr=hdr.transpose(2, 0, 1).copy(),
                            evs=np.asarray(self.evs, dtype=np.float64), crf_table=table, crf_desc=np.asarray(repr(crf)))
        atomic_write_bytes(path, buf.getvalue())
