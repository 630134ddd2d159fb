"""Numbers published in Kim, Lee & Kang, "End-to-End Differentiable Learning to HDR Image Synthesis for
Multi-exposure Images", AAAI 2021 (appendix C, Tables 2 and 3), shown as labelled "reported" rows.

They were measured on VDS by the paper's authors with a protocol the paper does not fully state, so
they are context for the reader, never compared numerically with ours.
"""

from __future__ import annotations

CITATION = "Kim, Lee & Kang, AAAI 2021, appendix C"

#: Table 2: stack reconstruction on VDS; (mean, std) per direction, method and metric.
TABLE2 = {
    ("EV+1", "proposed"): {"psnr": (30.292, 3.725), "ssim": (0.952, 0.050), "ms-ssim": (0.989, 0.009)},
    ("EV+1", "deep-recursive-hdri"): {"psnr": (30.142, 2.873), "ssim": (0.955, 0.036), "ms-ssim": (0.986, 0.010)},
    ("EV-1", "proposed"): {"psnr": (30.403, 3.601), "ssim": (0.940, 0.038), "ms-ssim": (0.985, 0.011)},
    ("EV-1", "deep-recursive-hdri"): {"psnr": (30.483, 3.836), "ssim": (0.936, 0.044), "ms-ssim": (0.982, 0.014)},
}

#: Table 3: ablation on VDS; ladder step -> {"hdrvdp2": (mean, std), "psnr": (mean, std)}.
TABLE3 = {
    "ladder-1-unet": {"hdrvdp2": (49.502, 6.519), "psnr": (25.864, 3.013)},
    "ladder-2-recurrent": {"hdrvdp2": (52.344, 6.852), "psnr": (27.652, 3.189)},
    "ladder-3-cin": {"hdrvdp2": (53.020, 5.110), "psnr": (27.996, 2.779)},
    "ladder-4-decomposition": {"hdrvdp2": (54.548, 6.455), "psnr": (28.542, 3.500)},
    "ladder-5-synthesis-layer": {"hdrvdp2": (57.813, 5.185), "psnr": (29.592, 3.596)},
    "ladder-6-cobi": {"hdrvdp2": (58.807, 5.413), "psnr": (30.347, 3.663)},
}

#: The paper's row labels for the ladder steps.
LADDER_LABELS = {
    "ladder-1-unet": "Baseline (U-Net)",
    "ladder-2-recurrent": "+ Recurrent network",
    "ladder-3-cin": "+ Conditional instance normalization",
    "ladder-4-decomposition": "+ Image decomposition",
    "ladder-5-synthesis-layer": "+ Differentiable HDR synthesis layer",
    "ladder-6-cobi": "+ Contextual bilateral loss",
}
