"""Figures a paper can use: no text outside the canvas, no "nan" drawn, bars where few points."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from issuemine.analysis import figures


def clipped_texts(fig: Figure) -> list[str]:
    """The visible texts whose drawn extent leaves the canvas (what a saved figure cuts off)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = fig.bbox
    found = []
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")):
        if not text.get_visible() or not text.get_text().strip():
            continue
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
            found.append(text.get_text())
    return found


def drawn_texts(fig: Figure) -> list[str]:
    FigureCanvasAgg(fig).draw()
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_visible()]


RATIOS = pd.DataFrame(
    {"latency p50": [0.44, 0.21, 1.7], "inference memory": [0.038, 0.05, 0.9], "size": [0.69, 0.4, 0.46]},
    index=["torch-mlp → onnx-torchscript", "torch-cnn-bn-dropout → onnx-dynamo", "keras-cnn → onnx-tf2onnx"],
)


@pytest.mark.parametrize("title", ["", "Converted / original, measured in the same run"])
def test_the_quality_ratios_keep_every_label_inside_the_canvas(title: str) -> None:
    fig = figures.ratio_bars(RATIOS, title)
    assert clipped_texts(fig) == []
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert "1" in ticks and len(ticks) <= 7  # plain numbers, few enough not to overlap


def test_the_agreement_chart_says_why_a_bar_is_missing_and_never_nan() -> None:
    rows = [
        {"group": "pilot", "dimension": "stage", "value": float("nan"), "n": 0, "why": float("nan")},
        {"group": "pilot", "dimension": "cause", "value": 0.9, "n": 60, "why": None},
    ]
    texts = drawn_texts(figures.agreement_chart(rows, ""))
    assert not any("nan" in t for t in texts)
    assert any("not computable" in t for t in texts) and "n=60" in texts


def test_few_model_sizes_are_drawn_as_bars_not_areas() -> None:
    rows = [{"setup": "torch.onnx", "nodes": n, "success": 0.7, "mismatch": 0.1, "failure": 0.2} for n in (15, 100)]
    fig = figures.share_by_size(rows, ["success", "mismatch", "failure"], "")
    ax = fig.axes[0]
    assert len(ax.patches) == 6 and not ax.collections  # 2 sizes × 3 outcomes, no stacked area
    assert clipped_texts(fig) == []
