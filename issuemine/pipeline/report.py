"""The full analysis written to a folder: tables, figures, and one self-contained HTML report.

The HTML embeds its figures as data URIs and uses no script or stylesheet from the network, so
the file opens anywhere, offline, and can be mailed as is.
"""

from __future__ import annotations

import base64
import html
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from issuemine.analysis import figures, opsets, selection, tables, trends
from issuemine.analysis.stats import converters_differ
from issuemine.corpus import flow, status
from issuemine.db import Database
from issuemine.db.labels import assigned_samples, ratings_frame
from issuemine.difftest import report as difftest_report
from issuemine.difftest.execute import TABLE_11
from issuemine.domain.converters import Converter
from issuemine.domain.taxonomy import Taxonomy
from issuemine.errors import IssuemineError
from issuemine.labeling.agreement import agreement
from issuemine.quality import store as quality_store
from issuemine.repro.tieback import Crosstab, TiebackReport, busiest_env, repro_report


@dataclass
class Report:
    folder: Path
    html: Path
    sample: str  # its name, or "all labeled issues"
    issues: int
    files: list[Path] = field(default_factory=list)
    rq3: trends.RQ3 | None = None
    repro: TiebackReport | None = None
    quality: pd.DataFrame | None = None  # the latest quality suite, per model × target
    difftest: dict[str, Any] | None = None  # differential-testing campaigns: difftest.report.summary
    bisections: pd.DataFrame | None = None  # repro bisect: where each issue's failure stopped
    seconds_tables: float = 0.0
    seconds_total: float = 0.0


def _agreement_rows(db: Database, taxonomy: Taxonomy, repos: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for name in assigned_samples(db):
        for a in agreement(ratings_frame(db, name, repos), taxonomy):
            value = a.kappa if a.kappa is not None else a.alpha
            rows.append(
                {
                    "sample": name,
                    "dimension": a.dimension,
                    "scope": a.scope,
                    "n": a.n,
                    "raters": ", ".join(a.raters),
                    "agreement %": round(100 * (a.percent or 0), 1),
                    "kappa": a.kappa,
                    "alpha": a.alpha,
                    "value": value,
                }
            )
    return rows


def _repro(db: Database, sample: str | None) -> TiebackReport | None:
    """The tie-back of reproduction verdicts to this sample's labels, for the environment with most runs."""
    env = busiest_env(db)
    if env is None:
        return None
    try:
        found = repro_report(db, env, sample)
    except IssuemineError:  # nothing extracted for this sample: the report has no re-run section
        return None
    return found if found.coverage["run"] else None


QUALITY_COLUMNS = [
    "model",
    "target",
    "route",
    "accuracy",
    "changed",
    "max |Δ|",
    "p50 ms b1 t1",
    "p50 ms b1 t1 ×",
    "p50 ms b32 t1 ×",
    "inference MB",
    "inference MB ×",
    "size KB",
    "size KB ×",
    "FGSM ε=0.1 success",
    "FGSM ε=0.1 fools original only",
    "FGSM ε=0.1 fools converted only",
    "PGD ε=0.1 success",
    "PGD ε=0.1 fools original only",
    "PGD ε=0.1 fools converted only",
    "note",
]


def _quality(db: Database) -> tuple[str, pd.DataFrame] | None:
    """The latest quality suite's table, or None when the database has no quality measurements."""
    try:
        rows = quality_store.measurements(db)
    except IssuemineError:
        return None
    table = pd.DataFrame(quality_store.report_rows(rows))
    return str(rows[0]["suite"]), table.reindex(columns=QUALITY_COLUMNS)


def _bisections(db: Database, sample: str | None) -> pd.DataFrame | None:
    """The stored `repro bisect` results (of the sample's issues), or None when there are none."""
    from issuemine.repro.bisect import bisection_table

    table = bisection_table(db, sample)
    return table if not table.empty else None


def _difftest(db: Database) -> dict[str, Any] | None:
    """Every differential-testing campaign's findings, or None when the database has none."""
    found = difftest_report.summary(db)
    return found if found["table_11"] else None


def difftest_tables(found: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Table 11, Table 12 and the grouped failure messages as tables (lists shortened to text)."""
    table_12 = pd.DataFrame(
        [
            {
                "campaign": t["campaign"],
                "setup": f"{t['converter']} {t['exporter']}",
                "mismatched": t["mismatched_models"],
                "correct": t["correct_models"],
                "ops only in mismatched": ", ".join(t["ops_only_mismatched"]),
                "shared by mismatched": t["shared_by_mismatched"],
                "shared with correct": t["shared_with_correct"],
                "mismatch-only": t["only_mismatched"],
                "reduced": t["reduced_only_mismatched"],
                "models with one": t["models_with_only_mismatched"],
                "most carried": "; ".join(f"{r['sequence']} ({r['models']})" for r in t["top_reduced"][:5]),
            }
            for t in found["table_12"]
        ]
    )
    made = {
        "difftest-table-11": pd.DataFrame(found["table_11"]).fillna(0).set_index(["campaign", "nodes"]),
        "difftest-table-12": table_12.set_index("campaign"),
    }
    if found["errors"]:
        made["difftest-failures"] = pd.DataFrame(found["errors"]).set_index(["campaign", "outcome"])
    if found["localized"]:
        made["difftest-localized"] = pd.DataFrame(found["localized"]).set_index(["campaign", "model"])
    return made


def stage_pairs(repro: TiebackReport, taxonomy: Taxonomy) -> pd.DataFrame:
    """Labeled stage (rows) × stage inferred from the re-run crash (columns), in codebook order."""
    order = [c.code for c in taxonomy.dimensions["stage"].codes]
    pairs = pd.DataFrame(repro.stage_agreement.pairs, columns=["labeled", "inferred"])
    table = pd.crosstab(pairs["labeled"], pairs["inferred"])
    present = [c for c in order if c in set(pairs["labeled"]) | set(pairs["inferred"])]
    return table.reindex(index=present, columns=present, fill_value=0)


def build(
    db: Database,
    taxonomy: Taxonomy,
    catalog: dict[str, Converter],
    out: Path,
    sample: str | None = None,
    converters: tuple[str, ...] = (),
    with_figures: bool = True,
    titles: bool = False,
) -> Report:
    """Tables, figures and report.html in ``out``. ``titles=False`` draws figures without titles, for
    a paper that captions them."""
    start = time.perf_counter()
    name, final = selection.load_final(db, taxonomy, sample, catalog, converters)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, out / "report.html", name or selection.ALL_LABELED, len(final))
    report.files += tables.write_tables(final, taxonomy, out)
    history = opsets.load_history()
    report.rq3 = trends.rq3(final, history)
    extra = {
        "rq3-releases": report.rq3.table,
        "time-to-close-stage": tables.time_to_close(final, taxonomy, "stage"),
        "time-to-close-symptom": tables.time_to_close(final, taxonomy, "symptom"),
        "issue-flow": flow.issue_flow(db),
    }
    for key, table in extra.items():
        for fmt in tables.FORMATS:
            path = out / "tables" / f"{key}.{'tex' if fmt == 'latex' else fmt}"
            path.write_text(tables.render(table, fmt) + "\n", encoding="utf-8")
            report.files.append(path)
    report.repro = _repro(db, name)
    quality = _quality(db)
    if quality is not None:
        report.quality = quality[1]
        for fmt in tables.FORMATS:
            path = out / "tables" / f"quality.{'tex' if fmt == 'latex' else fmt}"
            path.write_text(tables.render(quality[1].set_index(["model", "target"]), fmt) + "\n", encoding="utf-8")
            report.files.append(path)
    report.difftest = _difftest(db)
    if report.difftest is not None:
        for key, table in difftest_tables(report.difftest).items():
            for fmt in tables.FORMATS:
                path = out / "tables" / f"{key}.{'tex' if fmt == 'latex' else fmt}"
                path.write_text(tables.render(table, fmt) + "\n", encoding="utf-8")
                report.files.append(path)
    report.bisections = _bisections(db, name)
    if report.bisections is not None:
        for fmt in tables.FORMATS:
            path = out / "tables" / f"repro-bisect.{'tex' if fmt == 'latex' else fmt}"
            path.write_text(tables.render(report.bisections.set_index("issue"), fmt) + "\n", encoding="utf-8")
            report.files.append(path)
    report.seconds_tables = time.perf_counter() - start
    repos = {c.repo: c.name for c in catalog.values()}
    agreement_rows = _agreement_rows(db, taxonomy, repos)
    images: dict[str, Path] = {}
    if with_figures:
        fig_dir = out / "figures"

        def title(text: str) -> str:
            return text if titles else ""

        made = {
            "stages": figures.stacked_bars(
                tables.stage_table(final, taxonomy), title("Where converters fail"), "stage"
            ),
            "symptoms": figures.stacked_bars(
                tables.symptom_table(final, taxonomy, compare=False), title("How failures show"), "symptom"
            ),
            "cause-by-symptom": figures.heatmap(
                tables.cause_by_symptom(final, taxonomy), title("Top causes by symptom and converter")
            ),
            "failures-over-time": figures.cumulative(
                trends.quarterly(final), trends.releases(history), title("Failures over time and ONNX opset releases")
            ),
        }
        overall = [
            {
                "group": r["sample"],
                "dimension": r["dimension"],
                "value": r["value"],
                "n": r["n"],
                "why": None if r["value"] is not None else ("one rater" if "," not in r["raters"] else "one category"),
            }
            for r in agreement_rows
            if r["scope"] == "all"
        ]
        if overall:
            made["agreement"] = figures.agreement_chart(
                overall, title("Inter-rater agreement per sample and dimension")
            )
        if report.repro and report.repro.stage_agreement.n:
            made["repro-stages"] = figures.heatmap(
                stage_pairs(report.repro, taxonomy), title("Re-run crashes: labeled stage (rows) vs inferred stage")
            )
        if report.quality is not None:
            converted = report.quality[report.quality["target"] != "original"].dropna(subset=["p50 ms b1 t1 ×"])
            if not converted.empty:
                ratios = converted.set_index(converted["model"] + " → " + converted["target"])[
                    ["p50 ms b1 t1 ×", "inference MB ×", "size KB ×"]
                ].rename(
                    columns={"p50 ms b1 t1 ×": "latency p50", "inference MB ×": "inference memory", "size KB ×": "size"}
                )
                made["quality-ratios"] = figures.ratio_bars(
                    ratios, title("Converted / original, measured in the same run")
                )
        if report.difftest is not None and report.difftest["shares"]:
            made["difftest-outcomes"] = figures.share_by_size(
                report.difftest["shares"],
                [*TABLE_11[::-1], "other"],
                title("Differential testing: outcomes by model size"),
            )
        dated = (
            report.bisections.dropna(subset=["fixed in (released)", "closed"])
            if report.bisections is not None
            else None
        )
        if dated is not None and not dated.empty:
            made["repro-fixed-vs-closed"] = figures.fixed_vs_closed(
                dated, title("Release that fixed each issue vs when it was closed")
            )
        for key, fig in made.items():
            paths = figures.save(fig, fig_dir, key)
            report.files += paths
            images[key] = paths[0]
    _write_html(report, db, taxonomy, final, history, agreement_rows, images)
    report.files.append(report.html)
    report.seconds_total = time.perf_counter() - start
    return report


def _table_html(table: pd.DataFrame) -> str:
    """A table, or nothing for an empty one (its section's text says why). Its index becomes ordinary
    columns (pandas would head it with a second, mostly empty, header row), a mapping in a cell reads
    as `key: value` pairs, and a table wider than the page scrolls inside its own box."""
    if table.empty:
        return ""
    flat = table.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" / ".join(str(p) for p in col) for col in flat.columns]
    if not isinstance(flat.index, pd.RangeIndex):
        flat = flat.reset_index(names=[str(n) if n else " " * (i + 1) for i, n in enumerate(flat.index.names)])
    flat = flat.map(_cell_text)
    body = flat.to_html(classes="t", na_rep="", index=False, float_format=lambda v: f"{v:.3g}")
    return f'<div class="wide">{body}</div>'


def _cell_text(value: Any) -> Any:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value


def _with_contents(parts: list[str]) -> list[str]:
    """Anchors on every section heading and a table of contents before the first one."""
    entries, done = [], []
    for part in parts:
        found = re.match(r"<h2>(.*)</h2>$", part, re.S)
        if found:
            anchor = re.sub(r"[^a-z0-9]+", "-", html.unescape(re.sub(r"<[^>]+>", "", found[1])).lower()).strip("-")
            entries.append(f'<li><a href="#{anchor}">{found[1]}</a></li>')
            part = f'<h2 id="{anchor}">{found[1]}</h2>'
        done.append(part)
    first = next((i for i, p in enumerate(done) if p.startswith("<h2")), len(done))
    return [*done[:first], "<nav><b>Contents</b><ol>", *entries, "</ol></nav>", *done[first:]]


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _write_html(
    report: Report,
    db: Database,
    taxonomy: Taxonomy,
    final: pd.DataFrame,
    history: dict[int, opsets.Opset],
    agreement_rows: list[dict[str, Any]],
    images: dict[str, Path],
) -> None:
    corpus = status.corpus_status(db)
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>issuemine report: {esc(report.sample)}</title>",
        "<style>body{font:14px/1.45 sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table.t{border-collapse:collapse;margin:.5em 0 1.5em}table.t td,table.t th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}table.t th{background:#f3f3f3}img{max-width:100%}"
        "div.wide{overflow-x:auto;max-width:100%}"
        "h2{border-bottom:1px solid #ddd}</style></head><body>",
        f"<h1>Converter failures: sample <code>{esc(report.sample)}</code></h1>",
        f"<p>{report.issues} issues with final labels; taxonomy <code>{esc(taxonomy.name)}</code> version "
        f"<code>{esc(taxonomy.version)}</code>; database <code>{esc(corpus.database)}</code>.</p>",
        "<h2>Corpus</h2>",
        _table_html(pd.DataFrame([asdict(r) for r in corpus.repositories]).set_index("repo"))
        if corpus.repositories
        else "",
        "<h3>Issue flow (data selection)</h3>",
        _table_html(flow.issue_flow(db)),
    ]
    if corpus.last_fetch:
        parts += [
            "<h3>Last fetch per converter</h3>",
            _table_html(pd.DataFrame([asdict(r) for r in corpus.last_fetch])),
        ]
    else:
        parts.append("<p>No fetch recorded: issues are known from imported labels (stubs).</p>")
    parts.append("<h3>Samples</h3>")
    if corpus.samples:
        parts.append(_table_html(pd.DataFrame([asdict(s) for s in corpus.samples]).set_index("name")))
    else:  # labels imported without --sample: the report covers every labeled issue
        parts.append("<p>No named sample: the report covers every issue with final labels.</p>")
    if agreement_rows:
        shown = pd.DataFrame(agreement_rows).drop(columns=["value"]).set_index(["sample", "dimension", "scope"])
        parts += ["<h2>Inter-rater agreement</h2>", _table_html(shown)]
        if "agreement" in images:
            parts.append(_img(images["agreement"], "agreement per dimension"))
    sections = [
        ("Failure location (stage): Table 8", tables.stage_table(final, taxonomy), "stages", "stage"),
        ("Symptoms: Table 9", tables.symptom_table(final, taxonomy), "symptoms", "symptom"),
        ("Top causes by symptom: Table 10", tables.cause_by_symptom(final, taxonomy), "cause-by-symptom", None),
        ("Causes", tables.cause_table(final, taxonomy), None, "cause"),
        ("Cause sub-types", tables.subtype_table(final, taxonomy), None, None),
    ]
    converters = set(final["converter"])
    for title, table, image, dim in sections:
        parts += [f"<h2>{esc(title)}</h2>", _table_html(table)]
        if dim:
            counts = table[[c for c in table.columns if c in converters]]
            diff = converters_differ(counts)
            parts.append(f"<p>Do the converters differ? {esc(diff.test)}: p = {diff.p_value:.3g}.</p>")
        if image and image in images:
            parts.append(_img(images[image], title))
    rq3 = report.rq3
    assert rq3 is not None
    parts += [
        "<h2>Failures over time and ONNX releases (Figure 6, RQ3)</h2>",
        _img(images["failures-over-time"], "failures over time") if "failures-over-time" in images else "",
        _table_html(rq3.table.set_index("release")),
        f"<p>Spearman ρ between a release's operator changes and the failures opened until the next "
        f"release: <b>{_num(rq3.rho_all)}</b> (p = {_num(rq3.p_all)}); for the share of incompatibility and "
        f"type problems: <b>{_num(rq3.rho_share)}</b> (p = {_num(rq3.p_share)}). Protocol: opsets 2-7 merged, the "
        f"first and the latest release dropped. {rq3.dated} failures carry an opening date, {rq3.undated} do not."
        " The study reports ρ = 0.34 (0.33 for the share); see the analysis notebook for why a reproduction "
        "from the labeled sample alone differs.</p>",
        "<h3>Opset history: study data vs the installed onnx.defs</h3>",
        _opset_html(history),
        "<h2>Time to close (days)</h2>",
        _table_html(tables.time_to_close(final, taxonomy, "stage")),
        "<p>Issues known only as stubs have no closing date; fetch them for these figures.</p>",
        *_repro_html(report.repro, images),
        *_bisect_html(report.bisections, images),
        *_quality_html(report.quality, images),
        *_difftest_html(report.difftest, images),
        "</body></html>",
    ]
    report.html.write_text("\n".join(_with_contents(parts)), encoding="utf-8")


def _crosstab_html(frame: Crosstab) -> str:
    table = pd.DataFrame([counts for _, counts in frame.rows], columns=frame.columns)
    table.index = pd.Index([name for name, _ in frame.rows], name=frame.index)
    return _table_html(table)


def _repro_html(repro: TiebackReport | None, images: dict[str, Path]) -> list[str]:
    if not repro:
        return []
    esc = html.escape
    coverage = pd.DataFrame(list(repro.coverage.items()), columns=["step", "issues"]).set_index("step")
    crashes, pasted = repro.stage_agreement, repro.traceback_stage_agreement
    parts = [
        f"<h2>Reproduction in environment <code>{esc(repro.env)}</code></h2>",
        _table_html(coverage),
        "<h3>Verdicts by labeled symptom</h3>",
        _crosstab_html(repro.by_symptom) if repro.by_symptom.rows else "<p>No labeled issue was run.</p>",
        *(f"<p>{esc(line)}.</p>" for line in repro.reproduction),
        "<h3>Verdicts by converter</h3>",
        _crosstab_html(repro.by_converter),
        "<h3>Every run, by variant and the exporter it used</h3>",
        _crosstab_html(repro.by_variant) if repro.by_variant and repro.by_variant.rows else "",
        f"<p>Stage inferred from the re-run crash agrees with the labeled stage for {crashes.agree} of "
        f"{crashes.n} crashes.</p>",
        f"<p>Stage inferred from the traceback pasted in the issue agrees with the labeled stage for "
        f"{pasted.agree} of {pasted.n} issues.</p>",
    ]
    if "repro-stages" in images:
        parts.append(_img(images["repro-stages"], "labeled vs inferred stage"))
    return parts


def _quality_html(quality: pd.DataFrame | None, images: dict[str, Path]) -> list[str]:
    if quality is None:
        return []
    parts = [
        "<h2>Converted-model quality (ICSME 2022 metrics)</h2>",
        "<p>Per model and conversion target: test accuracy, test inputs whose predicted class changed, max |Δ| "
        "of the logits, latency (median of rounds; b = batch, t = threads), peak memory of a fresh process, "
        "size on disk, and the success of FGSM and PGD examples crafted on the original. × columns are "
        "converted / original from the same run. <code>issuemine quality report --format json</code> has every "
        "measurement with its spread and the package versions.</p>",
        _table_html(quality.set_index(["model", "target"])),
    ]
    if "quality-ratios" in images:
        parts.append(_img(images["quality-ratios"], "converted / original ratios"))
    return parts


def _bisect_html(table: pd.DataFrame | None, images: dict[str, Path]) -> list[str]:
    if table is None:
        return []
    parts = [
        "<h2>The release that fixed it (<code>repro bisect</code>)</h2>",
        "<p>Each issue's snippet across the stacks of their time, from the one of its time (where it must fail "
        "as reported) to today's: the last stack where it fails, the first where it passes, beside the issue's "
        "close date and the commit or pull request its timeline names.</p>",
        _table_html(table.set_index("issue")),
    ]
    if "repro-fixed-vs-closed" in images:
        parts.append(_img(images["repro-fixed-vs-closed"], "fixed-in release vs close date"))
    return parts


def _difftest_html(found: dict[str, Any] | None, images: dict[str, Path]) -> list[str]:
    if found is None:
        return []
    made = difftest_tables(found)
    parts = [
        "<h2>Differential testing of converters (Tables 11 and 12)</h2>",
        "<p>Models generated by NNSmith, converted, checked, loaded in ONNX Runtime and run on the same random "
        "inputs as the framework. Outcomes per campaign and model size (Table 11); each campaign's tolerance "
        "policy decides a mismatch (<code>issuemine difftest report --policy</code> recounts under another).</p>",
        _table_html(made["difftest-table-11"]),
    ]
    if "difftest-outcomes" in images:
        parts.append(_img(images["difftest-outcomes"], "outcome shares by model size"))
    parts += [
        "<h3>Operator sequences of mismatched vs correct models (Table 12)</h3>",
        "<p>Sequences are the operator types along the paths from inputs to outputs of each converted model; "
        "mismatch-only sequences are reduced to their shortest part no correct model has. "
        "<code>issuemine difftest coverage DIR</code> measures how many of them a set of test models contains.</p>",
        _table_html(made["difftest-table-12"]),
    ]
    if "difftest-failures" in made:
        parts += ["<h3>Most frequent failures, grouped</h3>", _table_html(made["difftest-failures"])]
    if "difftest-localized" in made:
        parts += [
            "<h3>Localized: first diverging operators</h3>",
            "<p>From <code>issuemine difftest localize MODEL_ID</code>; each reduced model is saved with its "
            "inputs and the framework's expected output.</p>",
            _table_html(made["difftest-localized"]),
        ]
    return parts


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _opset_html(history: dict[int, opsets.Opset]) -> str:
    try:
        computed = opsets.from_onnx_defs()
    except ImportError:
        return "<p>The onnx package is not installed: no cross-check.</p>"
    diffs = opsets.compare(history, computed)
    if not diffs:
        return "<p>The installed onnx.defs agrees with the study's history for every opset.</p>"
    rows = [
        {
            "opset": d.version,
            "only in study (added)": ", ".join(d.only_reference_added),
            "only in onnx.defs (added)": ", ".join(d.only_computed_added),
            "only in study (updated)": ", ".join(d.only_reference_updated),
            "only in onnx.defs (updated)": ", ".join(d.only_computed_updated),
        }
        for d in diffs
    ]
    return (
        "<p>Where the study's opset history and the installed onnx.defs disagree (newer onnx releases "
        "define some operators as functions and list schemas the study's extraction did not):</p>"
        + pd.DataFrame(rows).set_index("opset").to_html(classes="t")
    )
