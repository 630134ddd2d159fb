"""Reader for HDR-Eye (Nemoto et al., VPQM 2015): ground-truth HDR images and, optionally, their LDR inputs.

Layout (see ``datasets/hdr-eye.toml``; the HDR folder name is unverified)::

    <root>/images/HDR/<scene>_HDR.hdr   (or .exr)
    <root>/images/LDR/<scene>_LDR.tif   (CEVR's path; only for mode="ldr")

HDR-Eye has no EV -3..+3 LDR stacks. Two modes:

* ``mode="simulate"`` (default): the stack is simulated from the HDR with the camera model and a random
  realistic CRF seeded from the scene name, exactly as for ``hdr-folder``. Stack and HDR metrics are scored.
* ``mode="ldr"``: the dataset's own LDR image is the input; there is no ground-truth stack, so only HDR
  metrics are scored.
"""

from __future__ import annotations

from pathlib import Path

from hdrbench.data.base import Dataset, Scene, read_image, resize_hdr, resize_ldr, stable_seed, to_chw
from hdrbench.errors import DatasetError, InputError

MODES = ("simulate", "ldr")


class HDREyeDataset(Dataset):
    """HDR-Eye test scenes.

    Args:
        card, root, resolution, name: see :class:`~hdrbench.data.base.Dataset`.
        mode: ``"simulate"`` or ``"ldr"`` (see the module docstring).
        seed: seed of the simulated CRFs (combined with each scene name).
        emor_path: optional EMoR basis file for the CRF draws.
    """

    def __init__(self, card, *, root=None, resolution=None, name=None, mode: str = "simulate", seed: int = 0,
                 emor_path: str | Path | None = None) -> None:
        super().__init__(card, root=root, resolution=resolution, name=name)
        if mode not in MODES:
            raise InputError(f"hdr-eye: mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.seed = int(seed)
        self.emor_path = Path(emor_path) if emor_path else None

    def _hdr_files(self) -> dict[str, Path]:
        d = self._require_root() / "images" / "HDR"
        if not d.is_dir():
            raise DatasetError(f"hdr-eye: folder {d} does not exist; expected layout:\n{self.expected_layout()}")
        out = {}
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in (".hdr", ".exr") and p.stem.endswith("_HDR"):
                out[p.stem[: -len("_HDR")]] = p
        return out

    def scenes(self, split: str) -> list[str]:
        self._require_split(split)
        return list(self._hdr_files())

    def scene_files(self, split: str, scene: str) -> dict[str, Path]:
        files = {"hdr": self._hdr_files().get(scene, self._require_root() / "images" / "HDR" / f"{scene}_HDR.hdr")}
        if self.mode == "ldr":
            files["ldr"] = self._require_root() / "images" / "LDR" / f"{scene}_LDR.tif"
        return files

    def describe(self) -> dict:
        return {**super().describe(), "mode": self.mode, "seed": self.seed}

    def load(self, split: str, scene: str) -> Scene:
        import torch

        from hdrbench.imaging.camera import random_crf, simulate_stack

        self._require_split(split)
        files = self.scene_files(split, scene)
        if not files["hdr"].is_file():
            raise DatasetError(f"hdr-eye: missing ground-truth HDR {files['hdr']}")
        h = read_image(files["hdr"]).data
        hdr = to_chw(resize_hdr(h, self.resolution.size))
        meta = {"files": {k: str(v) for k, v in files.items()}, "mode": self.mode}
        if self.mode == "ldr":
            img = read_image(files["ldr"])
            if img.data.shape[:2] != h.shape[:2]:
                raise DatasetError(f"hdr-eye: {files['ldr']} is {img.data.shape[0]}x{img.data.shape[1]}, "
                                   f"its HDR is {h.shape[0]}x{h.shape[1]}")
            ldr = to_chw(resize_ldr(img.data, self.resolution.size, img.bit_depth))
            return Scene(name=scene, stack=None, evs=[0.0], hdr=hdr, meta=meta, ldr=ldr)
        seed = stable_seed("hdr-eye", self.seed, scene)
        gen = torch.Generator().manual_seed(seed)
        crf = random_crf(gen, emor_path=self.emor_path)
        stack = simulate_stack(hdr[None], self.evs, crf, generator=gen)[0].float()
        meta.update(seed=seed, crf=repr(crf))
        return Scene(name=scene, stack=stack, evs=list(self.evs), hdr=hdr, meta=meta)
