"""``hdr-folder:<path>``: any folder of HDR images turned into exposure stacks by the camera model.

Every ``*.hdr`` / ``*.exr`` file of the folder (not recursive) is one scene named by its file stem. The
HDR image is resized to the resolution policy (card default 256 x 256 Lanczos, like the paper; pass e.g.
``resolution=64`` for quick tests), then simulated into a 7-exposure stack (EV -3..+3) with a random
realistic CRF drawn from a generator seeded with ``(seed, file stem)``: deterministic per image and
independent of which other files are in the folder.

Splits: ``all`` is every image; ``train`` / ``test`` split by a hash of the stem (about 80 / 20), so
adding or removing images never moves the others between splits.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hdrbench.data.base import Dataset, Scene, read_image, resize_hdr, stable_seed, to_chw
from hdrbench.errors import DatasetError, InputError

HDR_SUFFIXES = (".hdr", ".exr")
#: An image is in ``test`` when the first byte of sha256(stem) is below this (52 / 256 = 20.3 %).
TEST_HASH_THRESHOLD = 52


def hash_split(stem: str) -> str:
    """``"test"`` or ``"train"`` for a file stem (stable across machines and Python versions)."""
    return "test" if hashlib.sha256(stem.encode("utf-8")).digest()[0] < TEST_HASH_THRESHOLD else "train"


class HDRFolderDataset(Dataset):
    """Stacks simulated from the HDR images of a folder.

    Args:
        card, root, resolution, name: see :class:`~hdrbench.data.base.Dataset`.
        seed: seed of the CRF draws (combined with each file stem).
        emor_path: EMoR basis file; when given, CRFs are drawn from the EMoR family (measured camera curves),
            otherwise from the parametric S-curve family (see ``hdrbench.imaging.crf.random_crf``).
    """

    def __init__(self, card, *, root=None, resolution=None, name=None, seed: int = 0,
                 emor_path: str | Path | None = None) -> None:
        super().__init__(card, root=root, resolution=resolution, name=name)
        self.seed = int(seed)
        self.emor_path = Path(emor_path) if emor_path else None
        if self.emor_path is not None and not self.emor_path.is_file():
            raise InputError(f"hdr-folder: emor_path {self.emor_path} does not exist")

    def _files(self) -> dict[str, Path]:
        root = self._require_root()
        files: dict[str, Path] = {}
        for p in sorted(root.iterdir()):
            if p.is_file() and p.suffix.lower() in HDR_SUFFIXES:
                if p.stem in files:
                    raise DatasetError(f"hdr-folder: {files[p.stem].name} and {p.name} share the scene name {p.stem!r}")
                files[p.stem] = p
        return files

    def scenes(self, split: str) -> list[str]:
        self._require_split(split)
        stems = list(self._files())
        return stems if split == "all" else [s for s in stems if hash_split(s) == split]

    def scene_files(self, split: str, scene: str) -> dict[str, Path]:
        files = self._files()
        if scene not in files:
            raise DatasetError(f"hdr-folder: no image {scene!r} in {self.root}")
        return {"hdr": files[scene]}

    def describe(self) -> dict:
        return {**super().describe(), "seed": self.seed, "emor_path": str(self.emor_path) if self.emor_path else None,
                "split_rule": f"sha256(stem)[0] < {TEST_HASH_THRESHOLD} -> test"}

    def load(self, split: str, scene: str) -> Scene:
        import torch

        from hdrbench.imaging.camera import random_crf, simulate_stack

        self._require_split(split)
        if scene not in self.scenes(split):
            raise DatasetError(f"hdr-folder: no scene {scene!r} in split {split!r} of {self.root}")
        path = self._files()[scene]
        img = read_image(path).data
        if img.ndim != 3 or img.shape[2] != 3:
            raise DatasetError(f"hdr-folder: {path} has shape {img.shape}, expected (H, W, 3)")
        hdr = to_chw(resize_hdr(img, self.resolution.size))
        if not torch.isfinite(hdr).all():
            raise DatasetError(f"hdr-folder: {path} contains NaN or Inf values")
        seed = stable_seed("hdr-folder", self.seed, scene)
        gen = torch.Generator().manual_seed(seed)
        crf = random_crf(gen, emor_path=self.emor_path)
        stack = simulate_stack(hdr[None], self.evs, crf, generator=gen)[0].float()
        meta = {"file": str(path), "seed": seed, "crf": repr(crf), "native_size": tuple(img.shape[:2])}
        return Scene(name=scene, stack=stack, evs=list(self.evs), hdr=hdr, meta=meta)
