"""The words of a chart, kept in its PNG: ``save_figure`` writes a PNG's title and a description -- every axis
label, every legend entry (the levels a chart marks: spot, walls, zero gamma) and colour-bar label -- as PNG text
chunks (Title, Description), so the export page's alt text, a screen reader and tests can read what a chart shows
without looking at its pixels. Other formats are saved as before. The format is the one the chart's path names
(:func:`image_format`)."""

from __future__ import annotations

from pathlib import Path

IMAGE_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def image_format(path: Path) -> str:
    """The image format a chart path names by its extension; ValueError for one we do not write."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        raise ValueError(f"{path}: unknown chart format {suffix or '(no extension)'!r}; use {', '.join(IMAGE_FORMATS)}")
    return suffix


def _legend_texts(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def chart_words(fig) -> tuple[str, str]:
    """(title, description) of a matplotlib figure: the suptitle and axes titles; then per axes its x/y labels and
    legend entries, and the figure legends' entries."""
    titles = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    parts = []
    for ax in fig.axes:
        if ax.get_title():
            titles.append(ax.get_title())
        x, y = ax.get_xlabel(), ax.get_ylabel()
        labels = [f"x: {x}" if x else "", f"y: {y}" if y else ""]
        marks = _legend_texts(ax.get_legend())
        labels.append(f"marked: {', '.join(marks)}" if marks else "")
        if any(labels):
            parts.append("; ".join(p for p in labels if p))
    figure_marks = [t for legend in fig.legends for t in _legend_texts(legend)]
    if figure_marks:
        parts.append(f"legend: {', '.join(figure_marks)}")
    one_line = [" ".join(t.split()) for t in titles if t.strip()]
    return " | ".join(one_line), " | ".join(" ".join(p.split()) for p in parts)


def save_figure(fig, path: Path, fmt: str | None = None) -> None:
    """``fig.savefig`` in the format ``path`` names (or ``fmt``); a PNG carries :func:`chart_words` as text chunks."""
    fmt = fmt or image_format(path)
    if fmt == "png":
        title, description = chart_words(fig)
        fig.savefig(path, format=fmt, metadata={"Title": title, "Description": description})
    else:
        fig.savefig(path, format=fmt)


def png_words(path: Path) -> dict[str, str]:
    """The text chunks of a PNG (Title, Description, Software, ...); empty when it has none or is not a PNG."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}
    except OSError:
        return {}


__all__ = ["IMAGE_FORMATS", "chart_words", "image_format", "png_words", "save_figure"]
