"""Optical transfer of the eye (MTF with glare) and the FFT helpers shared with the base-band CSF.

Frequencies follow HDR-VDP's ``create_cycdeg_image``: the spatial frequency in cycles per degree of
each coefficient of an FFT in the standard order, with the Nyquist frequency ppd / 2. Filtering
follows ``fast_conv_fft``: the image is padded on the bottom and right only (not centred) with a
constant to the filter's canvas size, multiplied by the real, even filter in the FFT domain, and the
top-left corner is cropped back. Because the canvas is twice the image and the padding is one-sided,
the circular wrap-around of the reference is reproduced exactly; do not replace it by a centred pad.
"""

from __future__ import annotations

import numpy as np
import torch

from .constants import constants
from .fastmath import needs_grad


def cycdeg_axis(n: int, ppd: float) -> np.ndarray:
    """Frequencies (cycles/degree, float64) of the ``n`` FFT coefficients along one axis (FFT order)."""
    nyq = 0.5 * ppd
    half = n // 2
    step = nyq / half
    if n % 2:
        return np.concatenate([np.linspace(0.0, nyq, half + 1), np.linspace(-nyq, -step, half)])
    return np.concatenate([np.linspace(0.0, nyq - step, half), np.linspace(-nyq, -step, half)])


def cycdeg_image(size: tuple[int, int], ppd: float) -> np.ndarray:
    """(rows, cols) float64 array: radial frequency in cycles per degree of each FFT coefficient."""
    yy = cycdeg_axis(int(size[0]), ppd)
    xx = cycdeg_axis(int(size[1]), ppd)
    return np.sqrt(xx[None, :] ** 2 + yy[:, None] ** 2)


def mtf(rho: np.ndarray) -> np.ndarray:
    """Optical modulation transfer of the eye at ``rho`` cycles/degree (sum of four exponentials)."""
    c = constants()
    return sum(a * np.exp(-b * rho) for a, b in zip(c.mtf_a, c.mtf_b))


_MTF_CACHE: dict = {}


def mtf_filter(h: int, w: int, ppd: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """MTF on the (2h, 2w) canvas restricted to the non-negative column frequencies used by ``rfft``.

    Returns:
        (2h, w + 1) real tensor, cached per (size, ppd, dtype, device).
    """
    key = (h, w, float(ppd), dtype, str(device))
    f = _MTF_CACHE.get(key)
    if f is None:
        if len(_MTF_CACHE) > 64:
            _MTF_CACHE.clear()
        full = mtf(cycdeg_image((2 * h, 2 * w), ppd))
        with torch.inference_mode(False):  # a normal tensor even when first built under torch.inference_mode, so later autograd calls can use it
            f = torch.from_numpy(np.ascontiguousarray(full[:, : w + 1])).to(device=device, dtype=dtype)
            # Transposed and each value doubled for the real and imaginary parts: the layout that
            # :func:`fast_conv_fft` multiplies with (see there).
            _MTF_CACHE[key + ("T",)] = f.transpose(0, 1)[..., None].expand(w + 1, 2 * h, 2).contiguous()
        _MTF_CACHE[key] = f
    return f


def mtf_filter_t(h: int, w: int, ppd: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`mtf_filter` transposed, each value twice: (w + 1, 2h, 2), contiguous (cached with it).

    This is the ``filt_half_t`` of :func:`fast_conv_fft`: multiplied with the real view of the complex column
    spectrum, so that no complex copy of the filter is made per call.
    """
    mtf_filter(h, w, ppd, dtype, device)
    return _MTF_CACHE[(h, w, float(ppd), dtype, str(device), "T")]


def fast_conv_fft(x: torch.Tensor, filt_half: torch.Tensor, pad_value: torch.Tensor | float,
                  filt_half_t: torch.Tensor | None = None) -> torch.Tensor:
    """Filter ``x`` with an even, real frequency-domain filter on a canvas padded bottom/right.

    Args:
        x: (..., h, w) real tensor.
        filt_half: (..., H2, W2 // 2 + 1) real filter over the non-negative column frequencies of an
            (H2, W2) canvas with H2 >= h, W2 >= w; W2 must be even (canvases here are 2x the image).
            It broadcasts against ``x``'s leading dimensions.
        pad_value: value of the padding (scalar or a tensor broadcastable to (..., 1, 1)).
        filt_half_t: optional ``filt_half`` transposed with each value doubled, (..., W2 // 2 + 1, H2, 2) (as
            :func:`mtf_filter_t`; saves the transposed copy per call for cached filters).

    Returns:
        (..., h, w) filtered tensor (real part of the inverse FFT, top-left crop).
    """
    h, w = x.shape[-2:]
    h2 = filt_half.shape[-2]
    w2 = 2 * (filt_half.shape[-1] - 1)
    # Subtracting the pad value lets the FFT pad with zeros; it is added back below, which is exact
    # because an even filter's response to a constant is the constant times its DC gain.
    pad = torch.as_tensor(pad_value, dtype=x.dtype, device=x.device)
    # The zero-padded canvases are allocated here and only their padding is zeroed: torch's own padding for
    # ``n=`` fills the whole canvas and copies the input into it (two more passes over four times the image).
    canvas = x.new_empty(x.shape[:-1] + (w2,))
    canvas[..., w:].zero_()
    if needs_grad(x, pad):
        canvas[..., :w] = x - pad
    else:
        torch.sub(x, pad, out=canvas[..., :w])
    spec = torch.fft.rfft(canvas, dim=-1)
    del canvas
    # The column transforms run on a transposed, contiguous copy (written into the zero-padded column canvas):
    # a strided FFT along dim -2 took about twice as long on the CPU (measured), and the transposes are exact.
    # They run on blocks of COLUMN_BLOCK spectrum columns, so that a block's canvas (COLUMN_BLOCK x H2 complex values)
    # stays in the CPU cache from the transpose to the inverse transform; the columns are independent, so the values
    # are those of one whole-canvas transform.
    if filt_half_t is None:
        ft = filt_half.transpose(-1, -2)
        filt_half_t = ft[..., None].expand(ft.shape + (2,))
    n_cols = spec.shape[-1]
    rows = spec.new_empty(spec.shape)  # the filtered column spectra, top h rows, back in the row layout
    for c0 in range(0, n_cols, COLUMN_BLOCK):
        c1 = min(n_cols, c0 + COLUMN_BLOCK)
        cols = spec.new_empty(spec.shape[:-2] + (c1 - c0, h2))
        cols[..., h:].zero_()
        cols[..., :h] = spec[..., c0:c1].transpose(-1, -2)
        cols = torch.fft.fft(cols, dim=-1)
        # Real and imaginary parts times the real filter on the complex tensor's real view, with the filter values
        # doubled to that layout (same values: (a + ib) f = af + ibf). Multiplying by the real filter directly first
        # made a complex copy of it, and broadcasting it over the last dimension of size 2 is not vectorised (both
        # slower, measured).
        torch.view_as_real(cols).mul_(filt_half_t[..., c0:c1, :, :])
        # Only the top h rows and left w columns of the result are kept: invert the column transforms first, crop,
        # then (below) invert the row transforms of the cropped rows only (saves a quarter of the work).
        rows[..., c0:c1] = torch.fft.ifft(cols, dim=-1)[..., :h].transpose(-1, -2)
        del cols
    del spec
    out = torch.fft.irfft(rows, n=w2, dim=-1)[..., :w]
    return out + pad * filt_half[..., :1, :1]


#: Spectrum columns per block of :func:`fast_conv_fft`'s column transforms. At 1920x1080 (3840x2160 canvas) a block
#: of 256 columns is 4.4 MB where the whole column canvas was 33 MB: the six planes' optics took 270-300 ms instead of
#: 357-391 ms with 2 threads (alternating runs); at 512x384 the time is unchanged (measured).
COLUMN_BLOCK = 256


#: Pixels (images x channels x H x W) filtered per FFT chunk by :func:`optics`. The 2x canvas makes the FFT's
#: intermediates about 18 times the input chunk (complex spectra of four times the area, in several steps);
#: filtering at most this many pixels at once bounds that to ~150 MB in float32 whatever the batch. On the CPU the
#: planes are filtered one at a time in any case (see :func:`optics`).
OPTICS_CHUNK_PIXELS = 1 << 21


def optics(img: torch.Tensor, ppd: float, surround: float) -> torch.Tensor:
    """Apply the eye's optical MTF (including glare) to absolute-luminance images.

    Args:
        img: (N, C, H, W) linear values in cd/m^2.
        ppd: pixels per degree of visual angle.
        surround: luminance (cd/m^2) of the padding around the image.

    Returns:
        (N, C, H, W) retinal image, clamped to [1e-5, 1e10] cd/m^2. The planes are filtered in chunks of
        about :data:`OPTICS_CHUNK_PIXELS` pixels, one plane per chunk on the CPU (each plane is filtered
        independently, so the values do not depend on the chunking).
    """
    n, ch, h, w = img.shape
    filt = mtf_filter(h, w, ppd, img.dtype, img.device)
    filt_t = mtf_filter_t(h, w, ppd, img.dtype, img.device)
    planes = img.reshape(n * ch, 1, h, w)
    per_chunk = max(1, OPTICS_CHUNK_PIXELS // (h * w))
    if img.device.type == "cpu":
        # One plane at a time on the CPU: its complex canvases (3 MB at 512x384 in float32) then stay in the CPU
        # cache across the transposes, the filter product and the transforms, where the six planes of a pair
        # (19 MB per canvas) did not: 21 -> 17 ms at 512x384 with 2 threads, 41-47 -> 34 ms with one (measured).
        per_chunk = 1
    if per_chunk >= n * ch:
        return fast_conv_fft(img, filt, surround, filt_t).clamp_(1e-5, 1e10)
    out = torch.empty_like(planes)
    for s0 in range(0, n * ch, per_chunk):
        out[s0 : s0 + per_chunk] = fast_conv_fft(planes[s0 : s0 + per_chunk], filt, surround, filt_t).clamp_(1e-5, 1e10)
    return out.reshape(n, ch, h, w)
