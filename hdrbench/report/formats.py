"""Writers: CSV for machines (deterministic, byte-identical when regenerated), Markdown and LaTeX
(booktabs) for people. Display formatting ("m ± s") exists only in the human formats.
"""

from __future__ import annotations

import io
import math

import pandas as pd

#: Decimal places of floats in CSVs: enough for every metric we report (Q, dB, SSIM) and stable.
CSV_DECIMALS = 6


def to_csv_text(df: pd.DataFrame) -> str:
    """CSV text with fixed float formatting and ``\\n`` line endings (stable across runs and platforms)."""
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format=f"%.{CSV_DECIMALS}f", lineterminator="\n")
    return buf.getvalue()


def _fmt(x, decimals: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        if x.is_integer() and abs(x) < 1e6 and decimals == 0:
            return str(int(x))
        return f"{x:.{decimals}f}"
    return str(x)


def display_frame(df: pd.DataFrame, decimals: int = 3) -> pd.DataFrame:
    """Merge ``<p>mean``/``<p>std`` column pairs into one "m ± s" column and format every cell as text."""
    out = pd.DataFrame(index=df.index)
    cols = list(df.columns)
    skip = set()
    for c in cols:
        if c in skip:
            continue
        if c.endswith("mean"):
            prefix = c[: -len("mean")]
            std = prefix + "std"
            if std in df.columns:
                name = prefix.rstrip("_") or "mean ± std"
                out[name] = [
                    _fmt(m, decimals) if (isinstance(s, float) and math.isnan(s)) else f"{_fmt(m, decimals)} ± {_fmt(s, decimals)}"
                    for m, s in zip(df[c], df[std])
                ]
                skip.add(std)
                continue
        if c in ("n_images", "n_failed", "step", "rank", "rank_shift", "rank_spread"):
            out[c] = [_fmt(float(v), 0) if pd.notna(v) else "–" for v in df[c]]
        else:
            out[c] = [_fmt(v, decimals) for v in df[c]]
    return out


def to_markdown(df: pd.DataFrame, decimals: int = 3) -> str:
    """GitHub-flavoured Markdown table of :func:`display_frame`."""
    d = display_frame(df, decimals)
    header = "| " + " | ".join(d.columns) + " |"
    sep = "|" + "|".join("---" for _ in d.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _latex_escape(s: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in s).replace("±", r"$\pm$").replace("–", "--")


def to_latex(df: pd.DataFrame, decimals: int = 3, caption: str | None = None) -> str:
    """A booktabs ``tabular`` (inside a ``table`` when ``caption`` is given) of :func:`display_frame`."""
    d = display_frame(df, decimals)
    align = "".join("l" if d[c].map(lambda v: not _numeric_text(v)).any() else "r" for c in d.columns)
    lines = [r"\begin{tabular}{" + align + "}", r"\toprule",
             " & ".join(_latex_escape(str(c)) for c in d.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(str(v)) for v in row) + r" \\" for row in d.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines = [r"\begin{table}[t]", r"\centering", r"\caption{" + _latex_escape(caption) + "}", *lines, r"\end{table}"]
    return "\n".join(lines) + "\n"


def _numeric_text(v: str) -> bool:
    head = str(v).split(" ± ")[0]
    try:
        float(head)
        return True
    except ValueError:
        return head == "–"
