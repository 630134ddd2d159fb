"""Build the embedded ``photos`` dataset (``datasets/photos/``) from the real HDR photographs of a source folder.

Maintainer tool, run once; the result is committed and frozen (its sha256 sums are in the manifest and the
tests check them). Usage:

    python scripts/build_photos.py --source ../shared/data/hdr --licenses ../shared/data/licenses

What it does, per selected photograph (:data:`SELECTION`):

* reads the source (linear Rec. 709 RGB, relative units);
* downscales it with area averaging (``cv2.INTER_AREA``: the right filter for a strong reduction, no
  ringing, so no negative radiance) so that its shorter side is :data:`SHORTER_SIDE` pixels (the longest
  side is then 262 to 512: the 2:1 panoramas become 512 x 256), so that the test view, a 256 x 256 crop,
  needs no resampling;
* divides it by a power of two when its peak would not fit the RGBE range comfortably (never needed for
  these files; the factor would be recorded) -- relative units make such a scale harmless;
* writes it as Radiance RGBE (``.hdr``, run-length encoded), the smaller of the two lossless-on-read
  formats for this content (half-float EXR with ZIP or PIZ compression came out 10-15 % larger because
  the photographs' grain defeats its compressors);
* reads the written file back and checks that a second encoding of what was read is byte-identical
  (the stored values are exactly the RGBE values, so every later read gives the same floats) and that
  the values read are within RGBE's quantisation (one part in 128 of a pixel's largest channel) of the
  downscaled image.

It then copies the licence texts and writes ``manifest.csv`` (file, source file, source group, licence,
licence file, width, height, bytes, sha256 of the committed file, sha256 of the source).

Selection: the natural photographs among the sources whose licence allows redistribution. Left out:
``LuminanceChroma_StarField`` (a computer-generated star field, not a photograph), ``ScanLines_Carrots``
(a still life built around a colour test chart) and ``memorial`` (Debevec's Memorial Church radiance map,
whose terms do not grant redistribution; the BSD licence next to it covers the code it was taken from).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hdrbench.atomic import atomic_write_text  # noqa: E402
from hdrbench.imaging.io import read_image, write_image  # noqa: E402

#: Shorter side of every stored photograph, in pixels: the test view (256 x 256) is a crop without resampling,
#: and the whole folder stays under 10 MB (9.5 MB in RGBE; a longest side of 512 for every photograph would
#: have made 13.6 MB).
SHORTER_SIDE = 256

OPENEXR = ("openexr", "BSD-3-Clause", "openexr-images_LICENSE.txt")
POLYHAVEN = ("polyhaven_pmndrs", "CC0-1.0", "pmndrs-assets_LICENSE_CC0.txt")

SELECTION: dict[str, tuple[str, str, str]] = {
    "Chromaticities_Rec709": OPENEXR,
    "LuminanceChroma_CrissyField": OPENEXR,
    "LuminanceChroma_MtTamNorth": OPENEXR,
    "MultiResolution_Bonita": OPENEXR,
    "MultiResolution_KernerEnvLatLong": OPENEXR,
    "MultiResolution_StageEnvLatLong": OPENEXR,
    "ScanLines_CandleGlass": OPENEXR,
    "ScanLines_Cannon": OPENEXR,
    "ScanLines_Desk": OPENEXR,
    "ScanLines_MtTamWest": OPENEXR,
    "ScanLines_StillLife": OPENEXR,
    "ScanLines_Tree": OPENEXR,
    "Tiles_GoldenGate": OPENEXR,
    "apartment": POLYHAVEN,
    "bridge": POLYHAVEN,
    "city": POLYHAVEN,
    "dawn": POLYHAVEN,
    "esplanade": POLYHAVEN,
    "forest": POLYHAVEN,
    "lobby": POLYHAVEN,
    "night": POLYHAVEN,
    "park": POLYHAVEN,
    "studio": POLYHAVEN,
    "sunrise": POLYHAVEN,
    "sunset": POLYHAVEN,
    "warehouse": POLYHAVEN,
}

#: RGBE stores an 8-bit mantissa shared by the three channels: a value may be off by up to one part in 128 of
#: its pixel's largest channel (truncation to the lower code plus half-code decoding, rounded up).
RGBE_RELATIVE_STEP = 1.0 / 128.0

MANIFEST_COLUMNS = ("file", "source_file", "source_group", "licence", "licence_file", "width", "height", "bytes",
                    "sha256", "source_sha256", "scale")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def downscale(img: np.ndarray, shorter: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    s = shorter / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.maximum(cv2.resize(img.astype(np.float32), size, interpolation=cv2.INTER_AREA), 0.0)


def build(source: Path, licenses: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "licenses").mkdir(exist_ok=True)
    rows = []
    for stem, (group, licence, licence_file) in SELECTION.items():
        src = source / f"{stem}.hdr"
        img = read_image(src).data
        small = downscale(img, SHORTER_SIDE)
        scale = 1.0
        while float(small.max()) * scale > 1e30:  # RGBE's exponent covers 2^-128..2^127; keep far inside it
            scale /= 2.0
        small = small * np.float32(scale)
        dst = out / f"{stem}.hdr"
        write_image(dst, small)
        back = read_image(dst).data
        tmp = out / f".{stem}.check.hdr"
        write_image(tmp, back)
        identical = tmp.read_bytes() == dst.read_bytes()
        tmp.unlink()
        if not identical:
            raise SystemExit(f"{dst}: re-encoding the values read back does not give the same file")
        peak = np.maximum(small.max(axis=2, keepdims=True), 1e-30)
        err = float((np.abs(back - small) / peak).max())
        if err > RGBE_RELATIVE_STEP:
            raise SystemExit(f"{dst}: read-back error {err:.3g} of the pixel peak exceeds RGBE's step")
        rows.append({"file": dst.name, "source_file": src.name, "source_group": group, "licence": licence,
                     "licence_file": f"licenses/{licence_file}", "width": back.shape[1], "height": back.shape[0],
                     "bytes": dst.stat().st_size, "sha256": sha256(dst), "source_sha256": sha256(src),
                     "scale": repr(scale)})
        print(f"{stem}: {img.shape[1]}x{img.shape[0]} -> {back.shape[1]}x{back.shape[0]}, {dst.stat().st_size} B, "
              f"max rel. error {err:.2e}")
    for _, _, licence_file in {v for v in SELECTION.values()}:
        shutil.copyfile(licenses / licence_file, out / "licenses" / licence_file)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "manifest.csv", buf.getvalue())
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(rows)} photographs, {total / 1e6:.2f} MB in {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="folder of the source .hdr photographs")
    ap.add_argument("--licenses", type=Path, required=True, help="folder of the licence texts")
    ap.add_argument("--out", type=Path, default=ROOT / "datasets" / "photos")
    args = ap.parse_args()
    build(args.source, args.licenses, args.out)


if __name__ == "__main__":
    main()
