"""The study's tables from final labels (see ``issuemine.db.labels.final_labels``), as DataFrames.

Rows follow the taxonomy's order; columns are the converters (sorted by name), ``total`` and the
total's share with its Wilson 95% interval. Every function takes the final-labels frame, so the
same code serves the CLI, the report and the notebooks.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from issuemine.analysis.stats import wilson
from issuemine.domain.taxonomy import SUBCAUSE, Taxonomy
from issuemine.resources import data_dir

OTHER = "Other"


def _distribution(final: pd.DataFrame, taxonomy: Taxonomy, dimension: str) -> pd.DataFrame:
    labeled = final.dropna(subset=[dimension])
    converters = sorted(labeled["converter"].unique())
    codes = taxonomy.all_codes(dimension)
    counts = pd.crosstab(labeled[dimension], labeled["converter"]).reindex(
        index=codes, columns=converters, fill_value=0
    )
    counts.index = [taxonomy.display(dimension, c) for c in codes]
    counts.index.name = dimension
    return counts


def with_totals(counts: pd.DataFrame) -> pd.DataFrame:
    table = counts.copy()
    table["total"] = counts.sum(axis=1)
    n = int(table["total"].sum())
    table["percent"] = (100 * table["total"] / n).round(1) if n else 0.0
    intervals = [wilson(int(k), n) for k in table["total"]]
    table["ci95_low"] = [round(100 * lo, 1) for lo, _ in intervals]
    table["ci95_high"] = [round(100 * hi, 1) for _, hi in intervals]
    return table


def stage_table(final: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Failure location (stage) per converter: the study's Table 8."""
    return with_totals(_distribution(final, taxonomy, "stage"))


def shen_symptoms() -> dict[str, int]:
    with open(data_dir() / "shen-2021-frontend-symptoms.csv", encoding="utf-8") as fh:
        return {row["symptom"]: int(row["count"]) for row in csv.DictReader(fh)}


def symptom_table(final: pd.DataFrame, taxonomy: Taxonomy, compare: bool = True) -> pd.DataFrame:
    """Symptoms per converter: the study's Table 9, with DL-compiler front-ends (Shen et al.) beside."""
    table = with_totals(_distribution(final, taxonomy, "symptom"))
    if compare:
        shen = shen_symptoms()
        table["dl_compiler_frontends"] = [shen.get(code, 0) for code in taxonomy.all_codes("symptom")]
    return table


def cause_table(final: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Causes per converter with totals."""
    return with_totals(_distribution(final, taxonomy, "cause"))


def subtype_table(final: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Cause sub-types (incompatibility internal/external, type problem node/tensor/conventional...)."""
    counts = _distribution(final, taxonomy, SUBCAUSE)
    parents = [taxonomy.display("cause", code.split(".")[0]) for code in taxonomy.all_codes(SUBCAUSE)]
    counts.index = pd.MultiIndex.from_arrays([parents, list(counts.index)], names=["cause", "subtype"])
    return with_totals(counts)


def cause_by_symptom(
    final: pd.DataFrame, taxonomy: Taxonomy, top: int = 5, symptoms: tuple[str, ...] = ("crash", "wrong-model")
) -> pd.DataFrame:
    """Top-``top`` causes × symptom per converter, the rest binned as Other: the study's Table 10.

    Columns are (symptom, converter) with the named symptoms and ``Other`` for the remaining ones.
    A catch-all cause of the taxonomy ("Others") is never ranked: it belongs in the Other bin.
    """
    labeled = final.dropna(subset=["cause", "symptom"])
    ranking = labeled["cause"].value_counts()
    order = {c: i for i, c in enumerate(taxonomy.all_codes("cause"))}
    catch_all = {c.code for c in taxonomy.dimension("cause").codes if c.catch_all}
    ranked = sorted((c for c in ranking.index if c not in catch_all), key=lambda c: (-ranking[c], order.get(c, 99)))
    kept = ranked[:top]
    cause = labeled["cause"].where(labeled["cause"].isin(kept), OTHER)
    symptom = labeled["symptom"].where(labeled["symptom"].isin(symptoms), OTHER)
    table = pd.crosstab(cause, [symptom, labeled["converter"]])
    rows = [*kept, OTHER]
    converters = sorted(labeled["converter"].unique())
    columns = pd.MultiIndex.from_product([[*symptoms, OTHER], converters], names=["symptom", "converter"])
    table = table.reindex(index=rows, columns=columns, fill_value=0)
    table.index = [taxonomy.display("cause", c) if c != OTHER else OTHER for c in rows]
    table.index.name = "cause"
    table.columns = pd.MultiIndex.from_tuples(
        [(taxonomy.display("symptom", s) if s != OTHER else OTHER, c) for s, c in table.columns],
        names=["symptom", "converter"],
    )
    return table


def flatten(table: pd.DataFrame) -> pd.DataFrame:
    """Single-level column names (``symptom / converter``) for CSV, JSON and Markdown."""
    out = table.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" / ".join(str(p) for p in col) for col in out.columns]
    if isinstance(out.index, pd.MultiIndex):
        out.index = [" / ".join(str(p) for p in idx) for idx in out.index]
    return out


def _number(decimals: int) -> Any:
    def show(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.{decimals}f}"
        return str(value)

    return show


# Characters our tables use that pdflatex rejects outside math mode (utf8 input covers accented
# Latin letters, not Greek letters, arrows or math signs), with what a paper writes instead.
LATEX_TEXT = {
    "Δ": r"$\Delta$",
    "ε": r"$\varepsilon$",
    "κ": r"$\kappa$",
    "ρ": r"$\rho$",
    "χ": r"$\chi$",
    "×": r"$\times$",
    "→": r"$\rightarrow$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "±": r"$\pm$",
    "²": r"$^{2}$",
    "≈": r"$\approx$",
    "…": r"\ldots{}",
    "–": "--",
    "—": "---",
}


def latex_text(text: str) -> str:
    """``text`` with every character pdflatex rejects written the LaTeX way (see LATEX_TEXT)."""
    return "".join(LATEX_TEXT.get(ch, ch) for ch in text)


def latex(table: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A paper-ready LaTeX table: booktabs rules, counts as integers and other numbers with one
    decimal, the index name in the header's corner (not a row of its own), a caption and a label."""
    frame = table.copy()
    if frame.index.name:
        if isinstance(frame.columns, pd.MultiIndex):
            frame.columns = frame.columns.set_names([*frame.columns.names[:-1], frame.index.name])
        else:
            frame.columns.name = frame.index.name
        frame.index.name = None
    styler = frame.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    for column in frame.columns:
        values = frame[column]
        integral = values.dropna().map(lambda v: float(v).is_integer() if isinstance(v, int | float) else False)
        styler = styler.format(_number(0 if integral.all() else 1), subset=[column], escape="latex")
    return latex_text(str(styler.to_latex(hrules=True, caption=caption, label=label, position_float="centering")))


def render(table: pd.DataFrame, fmt: str, caption: str | None = None, label: str | None = None) -> str:
    """A table as md, csv, latex or json text (LaTeX with ``caption`` and ``label``)."""
    if fmt == "md":
        return str(flatten(table).to_markdown())
    if fmt == "csv":
        return str(flatten(table).to_csv())
    if fmt == "latex":
        return latex(table, caption, label)
    if fmt == "json":
        return str(flatten(table).to_json(orient="index", indent=2))
    raise ValueError(f"unknown format {fmt!r}")


def counts_dict(table: pd.DataFrame) -> dict[str, Any]:
    return {str(k): v for k, v in flatten(table).to_dict(orient="index").items()}


def time_to_close(final: pd.DataFrame, taxonomy: Taxonomy, dimension: str) -> pd.DataFrame:
    """Days from opening to closing per category of ``dimension``: n, median, mean, quartiles."""
    dated = final.dropna(subset=["created_at", "closed_at", dimension]).copy()
    dated["days"] = (dated["closed_at"] - dated["created_at"]).dt.total_seconds() / 86400
    stats = dated.groupby(dimension)["days"].describe()[["count", "25%", "50%", "mean", "75%"]]
    stats = stats.reindex(taxonomy.all_codes(dimension)).dropna(how="all")
    stats.index = [taxonomy.display(dimension, c) for c in stats.index]
    stats.index.name = dimension
    return stats.rename(columns={"count": "n", "50%": "median"}).round(1)


TableFn = Callable[[pd.DataFrame, Taxonomy], pd.DataFrame]
TABLES: dict[str, TableFn] = {
    "stages": stage_table,
    "symptoms": symptom_table,
    "causes": cause_table,
    "cause-subtypes": subtype_table,
    "cause-by-symptom": cause_by_symptom,
}
FORMATS = ("md", "csv", "latex", "json")
CAPTIONS = {
    "stages": "Where converters fail: failure location (stage) per converter",
    "symptoms": "How failures show: symptoms per converter",
    "causes": "Why converters fail: causes per converter",
    "cause-subtypes": "Cause sub-types per converter",
    "cause-by-symptom": "Top causes by symptom and converter",
}


def write_tables(final: pd.DataFrame, taxonomy: Taxonomy, out: Path) -> list[Path]:
    """Every table in every format under ``out/tables``; returns the files written."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in TABLES.items():
        table = fn(final, taxonomy)
        for fmt in FORMATS:
            path = folder / f"{name}.{'tex' if fmt == 'latex' else fmt}"
            path.write_text(render(table, fmt, CAPTIONS.get(name), f"tab:{name}") + "\n", encoding="utf-8")
            written.append(path)
    return written
