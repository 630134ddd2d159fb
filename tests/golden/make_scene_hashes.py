"""Regenerate ``tests/golden/scene_hashes.json``: SHA-256 digests of procedurally rendered scenes.

The ``synthetic`` dataset and the results computed on it depend on :func:`hdrbench.data.scenes.render_scene`
drawing its random numbers in a fixed order. The digests pin every rendered array (and its layout
description) bit for bit, so a refactoring of the renderer that changes one value or the order of one draw
fails ``tests/test_data_scenes.py``. Run from the repository root only after a deliberate change of the
rendered images (which also bumps ``scenes.VERSION``), and review the diff:

    python tests/golden/make_scene_hashes.py

Covered: the card's default scenes (24 training seeds ``0..23`` and 8 test seeds ``TEST_SEED_OFFSET + 0..7``
at 128 x 128) and a few non-square renders (48 x 80), so both aspect-ratio paths of the noise are pinned.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "scene_hashes.json"
#: (seed, height, width) of every pinned render.
CASES = ([(s, 128, 128) for s in range(24)] + [(1_000_000 + s, 128, 128) for s in range(8)]
         + [(s, 48, 80) for s in range(4)])


def scene_digest(seed: int, height: int, width: int) -> dict[str, str]:
    """Digests of one render: ``image`` over the float32 bytes (C order), ``meta`` over the layout as JSON."""
    from hdrbench.data.scenes import render_scene

    img, meta = render_scene(seed, height, width, return_meta=True)
    arr = np.ascontiguousarray(img, dtype=np.float32)
    return {
        "image": hashlib.sha256(arr.tobytes()).hexdigest(),
        "meta": hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest(),
    }


def main() -> None:
    from hdrbench.atomic import atomic_write_text

    table = {f"{s}:{h}x{w}": scene_digest(s, h, w) for s, h, w in CASES}
    atomic_write_text(OUT, json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(table)} scenes)")


if __name__ == "__main__":
    main()
