"""Reader for VDS (Deep Chain HDRI's multi-exposure dataset) in both public layouts.

Layout A (the DiffHDRsyn code)::

    <root>/<split>_set/<scene>/<scene>_<ev>EV_true.jpg.png      ev in -3..3, e.g. t1_-3EV_true.jpg.png
    <root>/<split>_hdr_set/<scene>/target_hdr.hdr

Layout B (the CEVR code)::

    <root>/<split>/set/<scene>/<scene>_<ev>EV_true.jpg.png

CEVR reads no HDR. In layout B the ground-truth HDR is taken from layout A's HDR folders when they
exist beside it (``<root>/<split>_hdr_set/<scene>/target_hdr.hdr``); otherwise the scenes have no HDR and
the harness scores against the merged ground-truth stack (recorded in the run configuration).
"""

from __future__ import annotations

from pathlib import Path

from hdrbench.data.base import Dataset, Scene, read_image, resize_hdr, resize_ldr, to_chw
from hdrbench.errors import DatasetError


def _ev_label(ev: float) -> str:
    return str(int(ev)) if float(ev).is_integer() else f"{ev:g}"


class VDSDataset(Dataset):
    """VDS: 7-exposure 8-bit stacks (EV -3..+3) with Debevec-merged ground-truth HDR."""

    def _layout(self, split: str) -> str:
        root = self._require_root()
        if (root / f"{split}_set").is_dir():
            return "A"
        if (root / split / "set").is_dir():
            return "B"
        raise DatasetError(
            f"VDS split {split!r} not found under {root}: neither {root / f'{split}_set'} (layout A) nor "
            f"{root / split / 'set'} (layout B) exists")

    def _ldr_dir(self, split: str) -> Path:
        root = self._require_root()
        return root / f"{split}_set" if self._layout(split) == "A" else root / split / "set"

    def _hdr_dir(self, split: str) -> Path | None:
        d = self._require_root() / f"{split}_hdr_set"
        if self._layout(split) == "A" or d.is_dir():
            return d
        return None

    def scenes(self, split: str) -> list[str]:
        self._require_split(split)
        return sorted(p.name for p in self._ldr_dir(split).iterdir() if p.is_dir())

    def scene_files(self, split: str, scene: str) -> dict[str, Path]:
        folder = self._ldr_dir(split) / scene
        files: dict[str, Path] = {}
        for ev in self.evs:
            label = _ev_label(ev)
            path = folder / f"{scene}_{label}EV_true.jpg.png"
            if not path.exists() and ev > 0:
                alt = folder / f"{scene}_+{label}EV_true.jpg.png"
                path = alt if alt.exists() else path
            files[f"ev{label}"] = path
        hdr_dir = self._hdr_dir(split)
        if hdr_dir is not None:
            files["hdr"] = hdr_dir / scene / "target_hdr.hdr"
        return files

    def load(self, split: str, scene: str) -> Scene:
        import torch

        self._require_split(split)
        files = self.scene_files(split, scene)
        size = self.resolution.size
        frames = []
        native = None
        for ev in self.evs:
            path = files[f"ev{_ev_label(ev)}"]
            if not path.is_file():
                raise DatasetError(f"VDS scene {scene}: missing exposure EV {ev:+g}: {path}")
            img = read_image(path)
            if native is None:
                native = img.data.shape[:2]
            elif img.data.shape[:2] != native:
                raise DatasetError(f"VDS scene {scene}: {path} is {img.data.shape[0]}x{img.data.shape[1]}, "
                                   f"the scene's other exposures are {native[0]}x{native[1]}")
            frames.append(to_chw(resize_ldr(img.data, size, img.bit_depth)))
        hdr = None
        meta = {"files": {k: str(v) for k, v in files.items()}, "native_size": native, "layout": self._layout(split)}
        if "hdr" in files:
            path = files["hdr"]
            if not path.is_file():
                raise DatasetError(f"VDS scene {scene}: missing ground-truth HDR {path}")
            h = read_image(path).data
            if h.shape[:2] != native:
                raise DatasetError(f"VDS scene {scene}: {path} is {h.shape[0]}x{h.shape[1]}, "
                                   f"its LDR exposures are {native[0]}x{native[1]}")
            hdr = to_chw(resize_hdr(h, size))
        return Scene(name=scene, stack=torch.stack(frames), evs=list(self.evs), hdr=hdr, meta=meta)
