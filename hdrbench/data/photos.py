"""The embedded ``photos`` dataset: 26 real HDR photographs shipped with hdrbench, simulated into stacks.

The photographs live in ``datasets/photos/`` (``hdrbench/_cards/photos/`` in an installed package): Radiance
RGBE files with a shorter side of 256 pixels, their licence texts and ``manifest.csv`` (source, licence, size,
sha256). Every read checks the file's sha256 against the manifest, so a changed image is an error, never a
silently different benchmark.

The card (``datasets/photos.toml``) fixes everything else:

* the split (``[split]``: 8 test and 18 train photographs);
* ``test``: one scene per photograph, its fixed 256 x 256 view (``[test_views]``), resized with Lanczos only
  when another resolution is asked for;
* ``train``: ``crops_per_image`` scenes per photograph (``<image>_c00`` ...), each a random square crop (side
  between ``max(resolution, shorter side / 2)`` and the shorter side, random position) flipped left-right with
  probability 0.5 and resized with Lanczos to the resolution; crops never need upsampling at the default
  256 x 256;
* stacks: the camera model of :func:`hdrbench.imaging.camera.simulate_stack` (EV0 median at 0.18 of full
  scale, t = 2^EV), sensor noise, clipping, a random realistic CRF per scene, 8-bit quantisation.

Every draw of a scene (crop, flip, CRF, noise) comes from one generator seeded with
``sha256("photos", version, seed, split, scene)``: deterministic per seed, and independent of which other
scenes are read or in which order.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from hdrbench.data.base import Dataset, Scene, read_image, resize_hdr, stable_seed, to_chw
from hdrbench.errors import DatasetError, InputError

#: Samples of the stored CRF table (``Scene.meta['crf_table']``), as the synthetic dataset stores.
CRF_TABLE_SIZE = 1024
#: The camera's sensor noise (normalised units, see :class:`hdrbench.imaging.camera.SensorNoise`).
NOISE_SHOT = 2e-4
NOISE_READ = 1e-3


def photos_dir() -> Path:
    """The folder of the embedded photographs (next to the dataset cards, in a checkout and in a wheel)."""
    from hdrbench.paths import cards_dir

    return cards_dir() / "photos"


def read_manifest(folder: Path | None = None) -> list[dict[str, str]]:
    """Rows of ``manifest.csv`` (one per photograph, columns as the card's layout says).

    Raises:
        DatasetError: the manifest is missing or lacks a column.
    """
    path = (folder or photos_dir()) / "manifest.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DatasetError(f"photos: the manifest {path} is missing; the package is incomplete") from None
    need = {"file", "source_file", "licence", "licence_file", "width", "height", "bytes", "sha256"}
    if not rows or not need <= set(rows[0]):
        raise DatasetError(f"photos: {path} has no rows or lacks the column(s) "
                           f"{', '.join(sorted(need - set(rows[0] if rows else {})))}")
    return rows


class PhotosDataset(Dataset):
    """The embedded photographs, with a fixed split and seeded stack simulation.

    Args:
        card, root, resolution, name: see :class:`~hdrbench.data.base.Dataset`; ``root`` is not accepted
            (the data is embedded). ``resolution``: size of test views and training crops (card default 256).
        seed: seed of every draw (card default 0).
        crops_per_image: training scenes per training photograph (card default 8).
        noise: simulate sensor noise (default True).
        emor_path: an EMoR basis file: draw CRFs from the EMoR family instead of the parametric S-curves.
    """

    def __init__(self, card, *, root=None, resolution=None, name=None, seed: int | None = None,
                 crops_per_image: int | None = None, noise: bool = True,
                 emor_path: str | Path | None = None) -> None:
        if root is not None:
            raise InputError("dataset 'photos' is embedded in hdrbench and takes no root folder")
        super().__init__(card, root=None, resolution=resolution, name=name)
        d = card.section("defaults")
        self.seed = int(d.get("seed", 0) if seed is None else seed)
        self.crops_per_image = int(d.get("crops_per_image", 8) if crops_per_image is None else crops_per_image)
        if self.crops_per_image < 1:
            raise InputError(f"photos: crops_per_image must be >= 1, got {self.crops_per_image}")
        self.noise = bool(noise)
        self.emor_path = Path(emor_path) if emor_path else None
        if self.emor_path is not None and not self.emor_path.is_file():
            raise InputError(f"photos: emor_path {self.emor_path} does not exist")
        self.version = str(card.raw.get("version", "1"))
        split = card.section("split")
        self.images = {sp: [str(s) for s in split.get(sp, [])] for sp in ("train", "test")}
        self.views = {str(k): (int(v[0]), int(v[1])) for k, v in card.section("test_views").items()}
        self.folder = photos_dir()
        self._manifest = {r["file"]: r for r in read_manifest(self.folder)}
        for sp, stems in self.images.items():
            for stem in stems:
                if f"{stem}.hdr" not in self._manifest:
                    raise DatasetError(f"photos: the card's {sp} split names {stem!r}, which the manifest "
                                       f"{self.folder / 'manifest.csv'} does not list")
        missing_views = [s for s in self.images["test"] if s not in self.views]
        if missing_views:
            raise DatasetError(f"photos: the card gives no test view for {', '.join(missing_views)}")
        self._images: dict[str, np.ndarray] = {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "version": self.version, "seed": self.seed,
                "crops_per_image": self.crops_per_image, "noise": self.noise,
                "emor_path": str(self.emor_path) if self.emor_path else None}

    def for_training(self, size: tuple[int, int] | None) -> "PhotosDataset":
        """A copy whose scenes are produced at ``size``: the crop is resized before the camera simulation."""
        if size is None or size == self.resolution.size:
            return self
        import copy

        from hdrbench.data.base import Resolution

        other = copy.copy(self)
        other.resolution = Resolution(tuple(size))
        return other

    # -- the interface ------------------------------------------------------------------------------
    def scenes(self, split: str) -> list[str]:
        self._require_split(split)
        if split == "test":
            return list(self.images["test"])
        return [f"{stem}_c{k:02d}" for stem in self.images["train"] for k in range(self.crops_per_image)]

    def image_of(self, split: str, scene: str) -> str:
        """The photograph a scene comes from (``bridge`` for ``bridge`` in test, ``city`` for ``city_c03``)."""
        self._require_split(split)
        if split == "test":
            if scene not in self.images["test"]:
                raise DatasetError(f"photos: no scene {scene!r} in split 'test'")
            return scene
        stem, sep, k = scene.rpartition("_c")
        if not sep or stem not in self.images["train"] or not k.isdigit() or not 0 <= int(k) < self.crops_per_image:
            raise DatasetError(f"photos: no scene {scene!r} in split 'train' (names are <image>_cNN, "
                               f"NN < {self.crops_per_image})")
        return stem

    def scene_seed(self, split: str, scene: str) -> int:
        """Seed of every draw of one scene (crop, flip, CRF, noise)."""
        return stable_seed("photos", self.version, self.seed, split, scene)

    def photograph(self, stem: str) -> np.ndarray:
        """The stored photograph ``stem`` as (H, W, 3) float32 linear, after checking its sha256."""
        if stem not in self._images:
            row = self._manifest.get(f"{stem}.hdr")
            if row is None:
                raise DatasetError(f"photos: no photograph {stem!r} in {self.folder / 'manifest.csv'}")
            path = self.folder / row["file"]
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                raise DatasetError(f"photos: {path} is missing; the package is incomplete") from None
            digest = hashlib.sha256(raw).hexdigest()
            if digest != row["sha256"]:
                raise DatasetError(f"photos: {path} has sha256 {digest[:16]}..., the manifest says "
                                   f"{row['sha256'][:16]}...; the embedded data was changed")
            img = read_image(path).data
            if img.shape != (int(row["height"]), int(row["width"]), 3):
                raise DatasetError(f"photos: {path} is {img.shape}, the manifest says {row['height']}x{row['width']}")
            self._images[stem] = img
        return self._images[stem]

    def load(self, split: str, scene: str) -> Scene:
        import torch

        from hdrbench.imaging.camera import SensorNoise, random_crf, simulate_stack

        stem = self.image_of(split, scene)
        img = self.photograph(stem)
        seed = self.scene_seed(split, scene)
        gen = torch.Generator().manual_seed(seed)
        size = self.resolution.size
        if split == "test":
            top, left = self.views[stem]
            view = img[top:top + 256, left:left + 256]
            if view.shape[:2] != (256, 256):
                raise DatasetError(f"photos: the test view {self.views[stem]} of {stem} leaves the image "
                                   f"{img.shape[1]}x{img.shape[0]}")
            box = (top, left, 256)
            flip = False
        else:
            view, box, flip = self._crop(img, size, gen)
        hdr = to_chw(resize_hdr(np.ascontiguousarray(view), size))
        crf = random_crf(gen, emor_path=self.emor_path)
        noise = SensorNoise(shot=NOISE_SHOT, read=NOISE_READ) if self.noise else None
        stack = simulate_stack(hdr[None], self.evs, crf, noise=noise, generator=gen)[0].float()
        table = crf.table(CRF_TABLE_SIZE)
        table = np.asarray(table.detach().cpu().numpy() if hasattr(table, "detach") else table, dtype=np.float64)
        meta = {"file": str(self.folder / f"{stem}.hdr"), "image": stem, "seed": seed, "crop": box, "flip": flip,
                "crf": repr(crf), "crf_table": table}
        return Scene(name=scene, stack=stack, evs=list(self.evs), hdr=hdr, meta=meta)

    @staticmethod
    def _crop(img: np.ndarray, size: tuple[int, int] | None, gen) -> tuple[np.ndarray, tuple[int, int, int], bool]:
        """A random square crop of a training photograph and whether it is flipped (draws from ``gen``)."""
        import torch

        h, w = img.shape[:2]
        short = min(h, w)
        # Never below the output size (no upsampling), nor below half the shorter side; native: the shorter side.
        low = min(short, max(short // 2, max(size) if size else short))
        u = torch.rand(4, generator=gen, dtype=torch.float64).tolist()
        side = low + min(int(u[0] * (short - low + 1)), short - low)
        top = min(int(u[1] * (h - side + 1)), h - side)
        left = min(int(u[2] * (w - side + 1)), w - side)
        flip = u[3] < 0.5
        view = img[top:top + side, left:left + side]
        if flip:
            view = view[:, ::-1]
        return view, (top, left, side), flip
