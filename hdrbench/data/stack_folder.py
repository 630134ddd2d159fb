"""``stack-folder:<path>``: a user's own exposure stacks, one folder per scene.

Layout::

    <path>/<scene>/exposures.txt      one line per image: "<file name> <EV>"; EV 0 is the input; '#' comments
    <path>/<scene>/<images>           8/16-bit PNG, TIFF or JPEG, all the same size
    <path>/<scene>/hdr.hdr            optional ground truth (also hdr.exr or target_hdr.hdr)

All scenes are in split ``test``, unless ``<path>/train`` or ``<path>/test`` exist, in which case each
holds its split's scene folders. EVs may differ from the card's -3..+3; they are read per scene.
"""

from __future__ import annotations

from pathlib import Path

from hdrbench.data.base import Dataset, Scene, read_image, resize_hdr, resize_ldr, to_chw
from hdrbench.errors import DatasetError

EXPOSURE_LIST = "exposures.txt"
HDR_NAMES = ("hdr.hdr", "hdr.exr", "target_hdr.hdr")


def read_exposure_list(path: Path) -> list[tuple[str, float]]:
    """Parse ``exposures.txt`` into (file name, EV) pairs sorted by EV.

    Raises:
        DatasetError: missing file, malformed line, duplicate EV, or no EV 0 entry.
    """
    if not path.is_file():
        raise DatasetError(f"stack-folder: missing exposure list {path} (lines '<file name> <EV>')")
    entries: list[tuple[str, float]] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        try:
            entries.append((parts[0], float(parts[1])))
        except (IndexError, ValueError):
            raise DatasetError(f"stack-folder: {path}:{i}: expected '<file name> <EV>', got {line!r}") from None
    evs = [e for _, e in entries]
    if len(set(evs)) != len(evs):
        raise DatasetError(f"stack-folder: {path} lists an EV twice: {evs}")
    if 0.0 not in evs:
        raise DatasetError(f"stack-folder: {path} has no EV 0 entry (the input image)")
    return sorted(entries, key=lambda t: t[1])


class StackFolderDataset(Dataset):
    """Real exposure stacks from a folder of scene folders."""

    @property
    def splits(self) -> tuple[str, ...]:
        """``("test",)`` for a flat folder of scenes; the card's splits when ``train/`` or ``test/`` exist."""
        root = self.root
        if root is not None and ((root / "train").is_dir() or (root / "test").is_dir()):
            return self.card.splits
        return ("test",)

    def _split_dir(self, split: str) -> Path:
        root = self._require_root()
        if (root / "train").is_dir() or (root / "test").is_dir():
            return root / split
        if split != "test":
            raise DatasetError(f"stack-folder: {root} has no train/ or test/ folder, so every scene is in split 'test'")
        return root

    def scenes(self, split: str) -> list[str]:
        self._require_split(split)
        d = self._split_dir(split)
        if not d.is_dir():
            raise DatasetError(f"stack-folder: split folder {d} does not exist")
        return sorted(p.name for p in d.iterdir() if p.is_dir())

    def scene_files(self, split: str, scene: str) -> dict[str, Path]:
        folder = self._split_dir(split) / scene
        files = {f"ev{ev:g}": folder / name for name, ev in read_exposure_list(folder / EXPOSURE_LIST)}
        for name in HDR_NAMES:
            if (folder / name).is_file():
                files["hdr"] = folder / name
                break
        return files

    def load(self, split: str, scene: str) -> Scene:
        import torch

        self._require_split(split)
        folder = self._split_dir(split) / scene
        entries = read_exposure_list(folder / EXPOSURE_LIST)
        frames, native = [], None
        for name, ev in entries:
            img = read_image(folder / name)
            if native is None:
                native = img.data.shape[:2]
            elif img.data.shape[:2] != native:
                raise DatasetError(f"stack-folder: {folder / name} is {img.data.shape[0]}x{img.data.shape[1]}, "
                                   f"the scene's other images are {native[0]}x{native[1]}")
            frames.append(to_chw(resize_ldr(img.data, self.resolution.size, img.bit_depth)))
        hdr = None
        files = self.scene_files(split, scene)
        if "hdr" in files:
            h = read_image(files["hdr"]).data
            if h.shape[:2] != native:
                raise DatasetError(f"stack-folder: {files['hdr']} is {h.shape[0]}x{h.shape[1]}, "
                                   f"the scene's images are {native[0]}x{native[1]}")
            hdr = to_chw(resize_hdr(h, self.resolution.size))
        return Scene(name=scene, stack=torch.stack(frames), evs=[ev for _, ev in entries], hdr=hdr,
                     meta={"folder": str(folder), "native_size": native})
