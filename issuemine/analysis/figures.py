"""Figures for a paper at column width (3.5 in), with one color per converter and per category
in every figure. Each function returns a matplotlib Figure; ``save`` writes PNG and PDF."""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: CI, SSH, notebooks executed by tests
import pandas as pd
from matplotlib.figure import Figure

WIDTH = 3.5  # inches, one column of a two-column paper
MARK_CHANGES = 5  # opset releases drawn on the timeline (the study's Figure 6)
CONVERTER_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
# Distinct hues for unordered categories (stages, symptoms); a paired palette would suggest pairs.
CATEGORY_COLORS = matplotlib.colormaps["tab10"].colors  # type: ignore[attr-defined]
STYLE: Any = dict(
    {
        "font.size": 7,
        "axes.titlesize": 8,
        "axes.labelsize": 7,
        "legend.fontsize": 6,
        "xtick.labelsize": 6,
        "ytick.labelsize": 6,
        "figure.dpi": 150,
    }
)


def _figure(size: tuple[float, float]) -> tuple[Figure, Any]:
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots()


def styled(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw with the paper style (small fonts for column width) without touching global settings."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _title(ax: Any, title: str | None, **kwargs: Any) -> None:
    """Titles are optional: a paper captions its figures instead."""
    if title:
        ax.set_title(title, **kwargs)


def converter_color(converters: list[str]) -> dict[str, Any]:
    return {c: CONVERTER_COLORS[i % len(CONVERTER_COLORS)] for i, c in enumerate(sorted(converters))}


def category_color(categories: list[str]) -> dict[str, Any]:
    return {c: CATEGORY_COLORS[i % len(CATEGORY_COLORS)] for i, c in enumerate(categories)}


@styled
def stacked_bars(table: pd.DataFrame, title: str, category: str) -> Figure:
    """Share of each category (rows of ``table``) within each converter (columns), stacked."""
    converters = [
        c for c in table.columns if c not in ("total", "percent", "ci95_low", "ci95_high", "dl_compiler_frontends")
    ]
    counts = table[converters]
    shares = 100 * counts / counts.sum(axis=0).replace(0, 1)
    colors = category_color(list(table.index))
    rows = (len(table.index) + 2) // 3
    fig, ax = _figure((WIDTH, 0.9 + 0.3 * len(converters) + 0.18 * rows))
    left = pd.Series(0.0, index=converters)
    for cat in table.index:
        ax.barh(converters, shares.loc[cat], left=left, color=colors[cat], label=cat, edgecolor="white", linewidth=0.3)
        left += shares.loc[cat]
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"share of labeled failures (%), n = {int(counts.to_numpy().sum())}")
    _title(ax, title)
    fig.legend(title=category, ncols=3, loc="outside lower center", frameon=False)
    return fig


@styled
def heatmap(table: pd.DataFrame, title: str) -> Figure:
    """Cause × (symptom, converter) counts with the numbers written in the cells."""
    values = table.to_numpy()
    fig, ax = _figure((WIDTH, 1.3 + 0.28 * len(table)))
    image = ax.imshow(values, cmap="Blues", aspect="auto")
    ax.set_yticks(range(len(table.index)), labels=list(table.index))
    if isinstance(table.columns, pd.MultiIndex):
        labels = [f"{s} · {c}" for s, c in table.columns]
    else:
        labels = [str(c) for c in table.columns]
    ax.set_xticks(range(len(labels)), labels=labels, rotation=40, ha="right", rotation_mode="anchor")
    top = values.max() if values.size else 0
    for (i, j), v in pd.DataFrame(values).stack().items():
        ax.text(j, i, str(int(v)), ha="center", va="center", fontsize=6, color="white" if v > top / 2 else "black")
    _title(ax, title)
    fig.colorbar(image, ax=ax, label="failures (count)", shrink=0.8)
    return fig


@styled
def cumulative(quarters: pd.DataFrame, releases: list[tuple[str, Any, int]], title: str) -> Figure:
    """Cumulative failures per quarter per converter (solid: all; dashed: incompatibility + type
    problems) with ONNX opset releases of at least 5 operator changes as vertical lines."""
    fig, ax = _figure((WIDTH, 2.6))
    colors = converter_color(list(quarters["converter"].unique()))
    for converter, part in quarters.groupby("converter"):
        x = part["quarter"].dt.start_time
        ax.plot(x, part["all"], color=colors[converter], label=f"{converter}: all")
        ax.plot(x, part["structural"], color=colors[converter], linestyle="--", label=f"{converter}: incompat. + type")
    if not quarters.empty:
        start, end = quarters["quarter"].min().start_time, quarters["quarter"].max().end_time
        for label, released, changes in releases:
            when = pd.Timestamp(released)
            if changes >= MARK_CHANGES and start <= when <= end:
                ax.axvline(when, color="grey", linewidth=0.5, linestyle=":")
                # Above the plot area, so labels never cover the curves or the legend.
                ax.text(
                    when,
                    1.01,
                    label,
                    rotation=90,
                    va="bottom",
                    ha="center",
                    fontsize=5,
                    color="grey",
                    transform=ax.get_xaxis_transform(),
                )
    ax.set_xlabel("quarter the issue was opened")
    ax.set_ylabel("cumulative failures (count)")
    _title(ax, f"{title}\n(dotted: opsets with ≥ {MARK_CHANGES} operator changes)" if title else None, pad=16)
    ax.legend(loc="upper left", frameon=False)
    return fig


@styled
@styled
def ratio_bars(table: pd.DataFrame, title: str) -> Figure:
    """Ratios (columns) per row label as grouped horizontal bars, with the line of no change at 1.
    Ticks are plain numbers at 1-2-5 steps (a log axis's own labels overlap in a column-wide figure)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    columns = list(table.columns)
    colors = category_color(columns)
    fig, ax = _figure((WIDTH, 0.9 + 0.22 * len(table.index) * max(1, len(columns)) / 2))
    height = 0.8 / max(len(columns), 1)
    for k, column in enumerate(columns):
        ys = [i + k * height for i in range(len(table.index))]
        ax.barh(ys, table[column].fillna(0), height, label=column, color=colors[column])
    ax.set_yticks([i + height * (len(columns) - 1) / 2 for i in range(len(table.index))], labels=list(table.index))
    ax.axvline(1.0, color="black", linewidth=0.6)
    ax.set_xscale("log")
    values = [v for v in table.to_numpy().ravel() if pd.notna(v) and v > 0]
    low, high = min([*values, 1.0]), max([*values, 1.0])
    steps = [m * 10.0**e for e in range(-4, 5) for m in (1, 2, 5)]
    shown = [t for t in steps if low / 2 <= t <= high * 2]
    if len(shown) > 7:  # a wide range: powers of ten only
        shown = [t for t in shown if f"{t:g}".lstrip("0.").startswith("1")]
    ax.xaxis.set_major_locator(FixedLocator(shown))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("converted / original\n(log scale; 1 = no change)")
    ax.invert_yaxis()
    if title:  # over the whole figure: long row labels leave the axes too narrow for it
        fig.suptitle(textwrap.fill(title, 45), fontsize=8)
    fig.legend(frameon=False, ncols=min(len(columns), 3), loc="outside lower center")
    return fig


@styled
def agreement_chart(rows: list[dict[str, Any]], title: str) -> Figure:
    """Agreement (``value``) per ``dimension``, one bar per ``group`` (e.g. per sample)."""
    fig, ax = _figure((WIDTH, 2.3))
    frame = pd.DataFrame(rows)
    groups = list(dict.fromkeys(frame["group"]))
    dims = list(dict.fromkeys(frame["dimension"]))
    width = 0.8 / max(len(groups), 1)
    colors = category_color(groups)
    for k, group in enumerate(groups):
        part = frame[frame["group"] == group].set_index("dimension").reindex(dims)
        xs = [i + k * width for i in range(len(dims))]
        ax.bar(xs, part["value"].fillna(0), width, label=group, color=colors[group])
        for x, (_, row) in zip(xs, part.iterrows(), strict=True):
            n = "" if pd.isna(row.get("n")) else f"n={int(row['n'])}"
            why = row.get("why")
            why = why if isinstance(why, str) and why else "not computable"
            if pd.isna(row["value"]):  # say why there is no bar rather than leave a gap
                ax.text(x, 0.02, f"{n}\n{why}", ha="center", va="bottom", fontsize=5.5)
            elif n:
                ax.text(x, row["value"] + 0.01, n, ha="center", va="bottom", fontsize=5.5)
    ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(dims))], labels=dims)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("agreement (κ; α for > 2 raters)")
    _title(ax, title)
    fig.legend(frameon=False, ncols=min(len(groups), 4), loc="outside lower center")
    return fig


FEW_SIZES = 5  # fewer model sizes than this are drawn as bars


@styled
def share_by_size(rows: list[dict[str, Any]], outcomes: list[str], title: str) -> Figure:
    """Per setup (one panel each), the share of models in each outcome (stacked) against model size;
    ``rows`` carry ``setup``, ``nodes`` and one share per outcome."""
    frame = pd.DataFrame(rows)
    setups = list(dict.fromkeys(frame["setup"]))
    colors = category_color(outcomes)
    fig = Figure(figsize=(WIDTH, 0.6 + 1.1 * len(setups)), layout="constrained")
    axes = fig.subplots(len(setups), 1, sharex=True, squeeze=False)[:, 0]
    for ax, setup in zip(axes, setups, strict=True):
        part = frame[frame["setup"] == setup].sort_values("nodes")
        if part["nodes"].nunique() < FEW_SIZES:
            # A few sizes: stacked bars; an area between two or three points draws slopes nobody measured.
            bottom = [0.0] * len(part)
            labels = [str(n) for n in part["nodes"]]
            for o in outcomes:
                heights = list(100 * part[o])
                ax.bar(labels, heights, 0.6, bottom=bottom, label=o, color=colors[o])
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        else:
            ax.stackplot(
                part["nodes"],
                *[100 * part[o] for o in outcomes],
                labels=outcomes,
                colors=[colors[o] for o in outcomes],
                linewidth=0,
            )
        ax.set_ylim(0, 100)
        ax.set_ylabel("% of models")
        ax.set_title(setup, fontsize=6, loc="left")
    axes[-1].set_xlabel("operators per generated model")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), frameon=False, ncols=3, loc="outside lower center")
    return fig


def save(fig: Figure, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    # TrueType (Type 42) fonts in the PDF: ACM's and IEEE's font checks reject matplotlib's Type 3 default.
    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        for path in paths:
            fig.savefig(path, dpi=300 if path.suffix == ".png" else None)
    return paths


@styled
def fixed_vs_closed(table: pd.DataFrame, title: str) -> Figure:
    """Per bisected issue: when it was closed (x) and when the first stack where it passes came out
    (y). Points below the diagonal were closed after the release that fixed them; regressions are
    marked apart."""
    fig, ax = _figure((WIDTH, 2.8))
    colors = converter_color(sorted(table["converter"].unique()))
    for (converter, regression), part in table.groupby(["converter", "regression"]):
        ax.scatter(
            pd.to_datetime(part["closed"]),
            pd.to_datetime(part["fixed in (released)"]),
            color=colors[converter],
            marker="x" if regression else "o",
            s=18,
            label=f"{converter}{' (regression)' if regression else ''}",
        )
    dates = pd.to_datetime(pd.concat([table["closed"], table["fixed in (released)"]]).dropna())
    if not dates.empty:
        ax.plot([dates.min(), dates.max()], [dates.min(), dates.max()], color="grey", linewidth=0.5, linestyle=":")
    ax.set_xlabel("issue closed")
    ax.set_ylabel("first stack that passes (released)")
    _title(ax, title)
    ax.legend(loc="upper left", frameon=False, fontsize=6)
    return fig
