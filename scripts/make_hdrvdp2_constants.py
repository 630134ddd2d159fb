"""Regenerate ``hdrbench/metrics/hdrvdp2/constants.json`` from the HDR-VDP 2.2.2 specification numbers.

Inputs: the machine-readable copy of the specification constants (``constants.json`` beside the
HDR-VDP-2 reference scores) and the sp3 steerable-pyramid filter
taps from pyrtools (MIT; bit-identical to matlabPyrTools' ``sp3Filters``). The installed package
cannot read either at run time, so the numbers it needs are copied into one JSON file in the package.

Usage::

    python scripts/make_hdrvdp2_constants.py ../shared/data/hdrvdp2/constants.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "hdrbench" / "metrics" / "hdrvdp2" / "constants.json"


def _flat(v):
    # The specification stores row vectors as [[...]]; the package wants plain lists.
    return v[0] if isinstance(v, list) and len(v) == 1 and isinstance(v[0], list) else v


def build(spec: dict) -> dict:
    """Select and rename the numbers the metric uses; keys are documented in ``constants.py``."""
    import numpy as np
    import pyrtools

    filt = pyrtools.pyramids.filters.steerable_filters("sp3_filters")
    n = int(round(np.sqrt(filt["bfilts"].shape[0])))
    # matlabPyrTools reshapes each bfilts column in column-major order; store the 2-D kernels directly.
    bfilts = [np.asarray(filt["bfilts"][:, b]).reshape(n, n, order="F").tolist() for b in range(filt["bfilts"].shape[1])]
    return {
        "version": "2.2.2",
        "source": "HDR-VDP 2.2.2 default options (hdrvdp_parse_options), printed with %.17g under GNU Octave 7.3",
        "M_rgb_bt709_ccfl_lcd": spec["M_ccfl_lcd"],
        "M_luminance_d65": spec["M_luminance_d65"],
        "surround_l": spec["par_surround_l"],
        "sensitivity_correction": spec["par_sensitivity_correction"],
        "mask_p": spec["par_mask_p"],
        "mask_q": spec["par_mask_q"],
        "mask_self": spec["par_mask_self"],
        "mask_xo": spec["par_mask_xo"],
        "mask_xn": spec["par_mask_xn"],
        "psych_func_slope": spec["par_psych_func_slope"],
        "csf_params": spec["par_csf_params"],
        "csf_lums": _flat(spec["par_csf_lums"]),
        "mtf_params_a": _flat(spec["par_mtf_params_a"]),
        "mtf_params_b": _flat(spec["par_mtf_params_b"]),
        "quality_band_freq": _flat(spec["par_quality_band_freq"]),
        "quality_band_w": _flat(spec["par_quality_band_w"]),
        "pn_log10c_first": -5.0,
        "pn_log10c_step": spec["pn_log10c_step"],
        "pn_cone_jnd": spec["pn_cone_jnd_full"],
        "pn_rod_jnd": spec["pn_rod_jnd_full"],
        "sp3_lo0filt": np.asarray(filt["lo0filt"]).tolist(),
        "sp3_hi0filt": np.asarray(filt["hi0filt"]).tolist(),
        "sp3_lofilt": np.asarray(filt["lofilt"]).tolist(),
        "sp3_bfilts": bfilts,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec_json", type=Path, help="constants.json of the HDR-VDP 2.2.2 specification")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    data = build(json.loads(a.spec_json.read_text()))
    a.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
