"""Matplotlib figures: the correlation scatter (Fig. 5), CRF consistency curves (Fig. 3) and qualitative
grids (Figs. 6-7), which return the figure and its axes for tests to inspect (:func:`save_figure` writes PNG and
PDF); and the single-file plots of the commands: ``hdrbench calibrate --plot`` (:func:`inverse_crf_plot`) and
``hdrbench score --pmap`` (:func:`write_pmap`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hdrbench.atomic import atomic_open  # noqa: E402

STACK_LABELS = {"psnr": "stack PSNR, mean over EV ±1..±3 (dB)", "ssim": "stack SSIM, mean over EV ±1..±3",
                "ms-ssim": "stack MS-SSIM, mean over EV ±1..±3"}
HDR_LABELS = {"hdrvdp2": "HDR-VDP-2.2 Q (0-100)", "pu21-psnr": "PU21-PSNR (dB)", "pu21-ssim": "PU21-SSIM"}


def save_figure(fig, stem: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format, atomically; close it."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        with atomic_open(path, "wb") as fh:
            # Fixed metadata keeps regenerated PDFs/PNGs identical across runs.
            meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
            fig.savefig(fh, format=fmt, dpi=150, bbox_inches="tight", metadata=meta)
        paths.append(path)
    plt.close(fig)
    return paths


def correlation_scatter(points: pd.DataFrame, stats: pd.DataFrame, *, dataset: str, stack_metric: str = "psnr",
                        hdr_metric: str = "hdrvdp2", protocol: str = "singlehdr"):
    """Scatter of per-image stack accuracy (x) against HDR quality (y), one series per method.

    The legend carries each method's Pearson r and Spearman rho with their bootstrap 95 % intervals.
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    pts = points[points["dataset"] == dataset]
    for method, g in pts.groupby("method", sort=True):
        st = stats[(stats["dataset"] == dataset) & (stats["method"] == method)]
        label = method
        if not st.empty and pd.notna(st["pearson_r"].iloc[0]):
            s = st.iloc[0]
            label += (f" (r={s.pearson_r:.2f} [{s.pearson_lo:.2f}, {s.pearson_hi:.2f}], "
                      f"ρ={s.spearman_rho:.2f} [{s.spearman_lo:.2f}, {s.spearman_hi:.2f}])")
        ax.scatter(g["stack_value"], g["hdr_value"], s=18, alpha=0.8, label=label)
    ax.set_xlabel(STACK_LABELS.get(stack_metric, stack_metric))
    ax.set_ylabel(HDR_LABELS.get(hdr_metric, hdr_metric) + f" [{protocol}]")
    ax.set_title(f"Stack accuracy vs HDR quality per image — {dataset}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig, ax


def crf_curves(curves: pd.DataFrame, sigma: pd.DataFrame, *, dataset: str):
    """One panel per estimator: every scene's normalised inverse CRF (green channel), sigma in the title.

    Args:
        curves: columns ``scene, estimator, channel, z, value`` (z = pixel value in [0, 1]).
        sigma: columns ``estimator, sigma``.
    """
    estimators = list(dict.fromkeys(curves["estimator"]))
    fig, axes = plt.subplots(1, len(estimators), figsize=(3.2 * len(estimators), 3.2), squeeze=False, sharey=True)
    for ax, est in zip(axes[0], estimators):
        sub = curves[(curves["estimator"] == est) & (curves["channel"] == 1)]
        for scene, g in sub.groupby("scene", sort=True):
            ax.plot(g["z"], g["value"], lw=0.8, alpha=0.7, label=str(scene))
        s = sigma.loc[sigma["estimator"] == est, "sigma"]
        ax.set_title(f"{est}\nσ = {float(s.iloc[0]):.4f}" if len(s) else est, fontsize=9)
        ax.set_xlabel("pixel value Z (normalised)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("relative irradiance f⁻¹(Z) (normalised)")
    n_scenes = curves["scene"].nunique()
    if n_scenes <= 12:  # one colour per scene; beyond a dozen a legend is unreadable
        axes[0][-1].legend(fontsize=6, title="scene", title_fontsize=7, loc="upper left")
    fig.suptitle(f"Inverse CRF consistency across {n_scenes} scenes — {dataset} (green channel)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig, axes[0]


def qualitative_grid(images: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str], col_labels: Sequence[str],
                     captions: Sequence[Sequence[str]], pmaps: Sequence[Sequence[np.ndarray | None]] | None = None):
    """Grid of tone-mapped images (rows = scenes, columns = methods) with a caption under each.

    Args:
        images: rows x cols of (H, W, 3) arrays in [0, 1] (already tone mapped).
        captions: rows x cols of strings (e.g. "Q = 57.3").
        pmaps: optional rows x cols of (H, W) probability-of-detection maps in [0, 1], drawn in an extra
            row under each scene.
    """
    n_rows, n_cols = len(images), len(col_labels)
    per_scene = 2 if pmaps is not None else 1
    fig, axes = plt.subplots(n_rows * per_scene, n_cols, figsize=(2.4 * n_cols, 2.5 * n_rows * per_scene),
                             squeeze=False, layout="constrained")
    mappable = None
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r * per_scene][c]
            ax.imshow(np.clip(images[r][c], 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(captions[r][c], fontsize=8)
            if r == 0:
                ax.set_title(col_labels[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=9)
            if pmaps is not None:
                pax = axes[r * per_scene + 1][c]
                pm = pmaps[r][c]
                if pm is not None:
                    mappable = pax.imshow(pm, cmap="inferno", vmin=0, vmax=1)
                else:
                    pax.set_frame_on(False)  # the reference has no detection map
                pax.set_xticks([])
                pax.set_yticks([])
                if c == 0:
                    pax.set_ylabel("P_map", fontsize=9)
    if mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.6, label="probability of detection")
    return fig, axes


#: Width in pixels of the colour-bar panel to the right of the map in ``--pmap`` output.
PMAP_BAR_WIDTH = 100
#: Minimum height in pixels of the ``--pmap`` output (room for the colour-bar labels on small images).
PMAP_MIN_HEIGHT = 160


def inverse_crf_plot(path: str | Path, table, title: str) -> Path:
    """Plot a ``(C, 256)`` inverse CRF (pixel value -> linear irradiance) to ``path``."""
    import io

    from hdrbench.atomic import atomic_write_bytes

    path = Path(path)
    z = [k / (table.shape[1] - 1) for k in range(table.shape[1])]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    colours = ("tab:red", "tab:green", "tab:blue") if table.shape[0] == 3 else (None,) * table.shape[0]
    for i in range(table.shape[0]):
        ax.plot(z, table[i].tolist(), color=colours[i], label=("rgb"[i] if table.shape[0] == 3 else f"c{i}"))
    ax.set_xlabel("pixel value Z")
    ax.set_ylabel("relative irradiance g(Z)")
    ax.set_title(title)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower() or "png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def pmap_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) in pixels of the ``--pmap`` PNG for an image of ``width`` x ``height``."""
    return width + PMAP_BAR_WIDTH, max(height, PMAP_MIN_HEIGHT)


def write_pmap(path: str, p_map, reference) -> None:
    """Write P_map in colour over the greyscale tone-mapped reference, with a colour bar, as a PNG (atomic).

    The reference (C, H, W) is tone-mapped with Reinhard et al. 2002 (key 0.18) and shown as grey luminance
    with a 1/2.2 display gamma; each pixel's colour is the 'turbo' colour of its detection probability, blended
    over the grey with opacity equal to that probability (undetectable differences leave the reference visible).
    The map is drawn at native resolution (one PNG pixel per image pixel), the colour bar in a panel to its right.
    """
    import io

    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from hdrbench.atomic import atomic_write_bytes
    from hdrbench.imaging.luma import REC709_LUMA_6
    from hdrbench.imaging.tonemap import reinhard02

    ref = reference.to(torch.float64)
    if ref.shape[0] == 1:
        ref = ref.repeat(3, 1, 1)
    tm = reinhard02(ref[None].clamp_min(0.0))[0]
    wr, wg, wb = REC709_LUMA_6
    grey = (wr * tm[0] + wg * tm[1] + wb * tm[2]).clamp(0, 1).pow(1 / 2.2).numpy()
    p = p_map.detach().to(torch.float64).clamp(0, 1).cpu().numpy()
    cmap = plt.get_cmap("turbo")
    colour = cmap(p)[..., :3]
    alpha = p[..., None]
    overlay = grey[..., None] * (1 - alpha) + colour * alpha

    h, w = p.shape
    fw, fh = pmap_size(w, h)
    dpi = 100
    fig = Figure(figsize=(fw / dpi, fh / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 1 - h / fh, w / fw, h / fh))
    ax.imshow(overlay, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    cax = fig.add_axes(((w + 12) / fw, 0.1, 14 / fw, 0.8))
    cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=Normalize(0, 1), cmap=cmap), cax=cax)
    cb.set_label("P(detection)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())[:fh, :fw]
    # Guard against off-by-one rounding of the canvas size: pad with white to the documented size.
    if rgba.shape[0] != fh or rgba.shape[1] != fw:
        full = np.full((fh, fw, 4), 255, dtype=np.uint8)
        full[: rgba.shape[0], : rgba.shape[1]] = rgba
        rgba = full
    buf = io.BytesIO()
    plt.imsave(buf, rgba, format="png")
    atomic_write_bytes(path, buf.getvalue())
