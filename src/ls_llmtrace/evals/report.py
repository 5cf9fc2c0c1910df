"""``report --out DIR``: every figure as one static HTML page, readable offline.

Charts are plotly figures with plotly.js inlined once in the page (``include_plotlyjs``:
no CDN, no network; the page is about 4.5 MB): failure rates over time by model version
and by product area (the judge's raw rate and the corrected one, with intervals), the
judge's agreement with the reviewers (intervals) and its confusion matrix, per-category
F1, the reviewers' agreement (Krippendorff's alpha per field; pairwise agreement of the
reviewers beside the judge's), calibration before/after (from the store's calibration
runs: each run's ``result["before"]``/``result["after"]``, agreement dicts as
:meth:`BinaryAgreement.as_dict` writes them; "no calibration yet" otherwise), and a golden
set's coverage per category (its ``manifest.json``).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ls_llmtrace.evals.agreementsummary import summarize
from ls_llmtrace.evals.cases import GoldenManifest, read_manifest
from ls_llmtrace.evals.correction import corrected_rates, rates_over_time
from ls_llmtrace.evals.judged import QueueVerdicts

REPORT_FILE = "report.html"
_BLUE, _ORANGE, _GREY = "#1f77b4", "#ff7f0e", "#7f7f7f"


def golden_manifest(path: Path) -> GoldenManifest | None:
    """The manifest of a golden set folder, or of the newest set in a folder of sets."""
    if not path.is_dir():
        return None
    manifest = read_manifest(path)
    if manifest is not None:
        return manifest
    found = [m for m in (read_manifest(p) for p in path.iterdir() if p.is_dir()) if m]
    return max(found, key=lambda m: m.built_at) if found else None


def _errors(rows: list[dict[str, Any]]) -> tuple[list[float | None], dict[str, Any]]:
    """Values and plotly asymmetric error bars from Estimate dicts."""
    values = [r["value"] for r in rows]
    plus = [(r["high"] - r["value"]) if r["value"] is not None and r["high"] is not None
            else 0 for r in rows]
    minus = [(r["value"] - r["low"]) if r["value"] is not None and r["low"] is not None
             else 0 for r in rows]
    return values, {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


class _Page:
    """Sections of HTML; the first chart carries plotly.js."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def note(self, text: str) -> None:
        self.parts.append(f"<p class=note>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
                       + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def chart(self, figure: Any, name: str) -> None:
        figure.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 60}, height=380,
                             template="plotly_white")
        self.parts.append(figure.to_html(full_html=False, include_plotlyjs=self.charts == 0,
                                         div_id=f"chart-{name}",
                                         config={"displaylogo": False}))
        self.charts += 1


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _est(d: dict[str, Any] | None, percent: bool = True) -> str:
    if not d or d.get("value") is None:
        return "-"
    f = _pct if percent else (lambda v: "-" if v is None else f"{v:.3f}")
    if d.get("low") is None:
        return f(d["value"])
    return f"{f(d['value'])} [{f(d['low'])}, {f(d['high'])}]"


def _rates_over_time(page: _Page, qv: QueueVerdicts, dimension: str, period: str, seed: int,
                     n_resamples: int) -> None:
    import plotly.graph_objects as go

    rows = [r for r in rates_over_time(qv, dimension, period=period, seed=seed,
                                       n_resamples=n_resamples) if r["judged"]]
    page.heading(f"Failure rate over time by {dimension.replace('_', ' ')}")
    if not rows:
        page.note("no judged traces yet: run `ls-llmtrace agreement --fetch` after the "
                  "judge has predicted")
        return
    from plotly.colors import qualitative

    figure = go.Figure()
    for n, value in enumerate(sorted({r["value"] for r in rows})):
        color = qualitative.Plotly[n % len(qualitative.Plotly)]
        mine = [r for r in rows if r["value"] == value]
        periods = [r["period"] for r in mine]
        corrected, bars = _errors([r["corrected"] for r in mine])
        figure.add_trace(go.Scatter(x=periods, y=corrected, error_y=bars,
                                    mode="lines+markers", name=f"{value} corrected",
                                    line={"color": color}))
        figure.add_trace(go.Scatter(x=periods, y=[r["raw"]["value"] for r in mine],
                                    mode="lines+markers", line={"dash": "dot", "color": color},
                                    name=f"{value} judge (raw)"))
    figure.update_layout(title=f"Failure rate per {period}: corrected (solid, 95% interval) "
                         "and the judge's raw rate (dotted)", yaxis_tickformat=".0%",
                         xaxis_title=period, yaxis_title="failure rate")
    page.chart(figure, f"rates-{dimension}")


def _corrected_table(page: _Page, corrected: dict[str, Any]) -> None:
    cal = corrected["calibration"]
    page.heading("Failure rates now: raw and corrected for the judge")
    page.note(f"Rogan-Gladen correction with the judge's TPR {_pct(cal['tpr'])} and TNR "
              f"{_pct(cal['tnr'])}, measured on {cal['n']} traces both the judge and a "
              "reviewer labelled; intervals cover both samples.")
    rows = [["(all)", corrected["total"]]] + [
        [f"{dim}={r['value']}", r] for dim, cells in corrected["by"].items() for r in cells]
    page.table(["cell", "judged", "judge rate", "corrected", "reviewed rate"],
               [[name, r["judged"], _est(r["raw"]), _est(r["corrected"]),
                 f"{_pct(r['reviewed_rate'])} ({r['reviewed_failing']}/{r['reviewed']})"
                 if r["reviewed"] else "-"] for name, r in rows])


def _agreement(page: _Page, summary: dict[str, Any]) -> None:
    import plotly.graph_objects as go

    page.heading("Judge vs reviewers")
    b = summary["binary"]
    if b is None:
        page.note("no trace has both a judge verdict and a reviewer's yet")
        return
    names = ["accuracy", "kappa", "tpr", "tnr", "balanced_accuracy", "precision", "f1"]
    labels = ["accuracy", "Cohen's kappa", "TPR", "TNR", "balanced accuracy",
              "precision (fail)", "F1 (fail)"]
    values, bars = _errors([b[n] for n in names])
    figure = go.Figure(go.Bar(x=labels, y=values, error_y=bars, marker_color=_BLUE))
    figure.update_layout(title=f"Agreement on {b['n']} traces (95% bootstrap intervals, "
                         f"{b['n_resamples']} resamples, seed {b['seed']})",
                         yaxis_range=[min(0, *(v for v in values if v is not None)), 1])
    page.chart(figure, "agreement")
    c = b["confusion_counts"]
    matrix = go.Figure(go.Heatmap(
        z=[[c["tp"], c["fn"]], [c["fp"], c["tn"]]], x=["judge: fail", "judge: pass"],
        y=["reviewer: fail", "reviewer: pass"], colorscale="Blues", showscale=False,
        text=[[str(c["tp"]), str(c["fn"])], [str(c["fp"]), str(c["tn"])]],
        texttemplate="%{text}"))
    matrix.update_layout(title="Confusion matrix", yaxis_autorange="reversed")
    page.chart(matrix, "confusion")
    if summary["categories"]:
        cats = summary["categories"]
        f1, bars = _errors([x["f1"] for x in cats])
        figure = go.Figure(go.Bar(x=[x["category"] for x in cats], y=f1, error_y=bars,
                                  marker_color=_ORANGE))
        figure.update_layout(title="Per-category F1 of the judge's categories",
                             yaxis_range=[0, 1])
        page.chart(figure, "categories")
    for dim, rows in summary["slices"].items():
        flagged = [r["value"] for r in rows if r["below_rest"]]
        if flagged:
            page.note(f"{dim}: agreement significantly below the rest in "
                      f"{', '.join(flagged)} (one-sided Fisher exact test, Holm-adjusted)")
    if summary["spans"]:
        s = summary["spans"]
        page.note(f"spans: token-level F1 {_est(s['f1'], False)} over {s['items']} texts")


def _reviewers(page: _Page, summary: dict[str, Any]) -> None:
    import plotly.graph_objects as go

    page.heading("Reviewers vs reviewers")
    rel = summary["reliability"]
    if rel is None:
        page.note("no trace has two or more reviewers yet (Label Studio's overlap settings "
                  "give a task to several reviewers)")
        return
    fields = [*rel["alpha"], rel["alpha_overall"]]
    figure = go.Figure(go.Bar(x=[f["field"] for f in fields],
                              y=[f["alpha"] for f in fields], marker_color=_GREY))
    figure.update_layout(title=f"Krippendorff's alpha ({len(rel['reviewers'])} reviewers, "
                         f"{rel['traces_with_two_or_more']} traces with two or more)")
    page.chart(figure, "alpha")
    raters = [*rel["per_reviewer"], {**rel["among_reviewers"], "rater": "all reviewer pairs"}]
    if rel["judge"]:
        raters.append({**rel["judge"], "rater": "judge vs reviewers"})
    values, bars = _errors([r["agreement"] for r in raters])
    figure = go.Figure(go.Bar(
        x=[r["rater"] for r in raters], y=values, error_y=bars,
        marker_color=[_ORANGE if r["rater"] == "judge vs reviewers" else _BLUE
                      for r in raters]))
    figure.update_layout(title="Verdict agreement: each reviewer with the others; the "
                         "judge beside them",
                         yaxis_tickformat=".0%", yaxis_range=[0, 1])
    page.chart(figure, "reviewers")


def _calibration(page: _Page, calibrations: list[dict[str, Any]]) -> None:
    import plotly.graph_objects as go

    page.heading("Calibration: before and after")
    usable = [c for c in calibrations if isinstance(c.get("result"), dict)
              and isinstance(c["result"].get("before"), dict)
              and isinstance(c["result"].get("after"), dict)]
    if not usable:
        page.note("no calibration yet (`ls-llmtrace calibrate` records one)")
        return
    figure = go.Figure()
    for side, color in (("before", _GREY), ("after", _BLUE)):
        rows = []
        for c in usable:
            kappa = c["result"][side].get("kappa")
            rows.append(kappa if isinstance(kappa, dict) else
                        {"value": kappa, "low": None, "high": None})
        values, bars = _errors(rows)
        figure.add_trace(go.Bar(
            x=[f"{c.get('judge_kind')} {c.get('schema_id')}@v{c.get('schema_version')} "
               f"#{c.get('calibration_id')}" for c in usable],
            y=values, error_y=bars, name=side, marker_color=color))
    figure.update_layout(barmode="group", title="Test-split Cohen's kappa before and after "
                         "each calibration (95% intervals)")
    page.chart(figure, "calibration")


def _golden(page: _Page, manifest: GoldenManifest | None, categories: list[str]) -> None:
    import plotly.graph_objects as go

    page.heading("Golden set coverage per category")
    if manifest is None:
        page.note("no golden set found (`ls-llmtrace golden build --out golden` writes one)")
        return
    per = dict(manifest.counts.get("per_category") or {})
    # the schema's categories without a case show as zero: what the set does not cover
    per = {**{c: 0 for c in categories}, **per} if per or categories else per
    counts = manifest.counts
    page.note(f"set {manifest.set_id}: {counts.get('cases', 0)} cases, "
              f"{counts.get('failures', 0)} failures, {counts.get('controls', 0)} controls")
    if not per:
        page.note("its failures carry no categories")
        return
    figure = go.Figure(go.Bar(x=list(per), y=list(per.values()), marker_color=_ORANGE))
    figure.update_layout(title=f"Failures per category in {manifest.set_id}",
                         yaxis_title="cases")
    page.chart(figure, "golden")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em} td,th{padding:3px 10px;border:1px solid #ddd}
th{background:#f4f4f4;text-align:left} .note{color:#555}
"""


def build_report(qv: QueueVerdicts, out_dir: Path, *, period: str = "week", seed: int = 0,
                 n_resamples: int = 2000, calibrations: list[dict[str, Any]] | None = None,
                 manifest: GoldenManifest | None = None,
                 now: datetime | None = None) -> Path:
    """Write ``out_dir/report.html`` and return its path."""
    summary = summarize(qv, seed=seed, n_resamples=n_resamples)
    corrected = corrected_rates(qv, seed=seed, n_resamples=n_resamples)
    page = _Page()
    t = summary["traces"]
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    page.parts.append(
        f"<h1>ls-llmtrace report: queue {html.escape(qv.queue)}</h1>"
        f"<p>schema {html.escape(qv.schema.version_id)}, judge "
        f"{html.escape(qv.judge_version or '(none)')}: {t['judged']} traces judged, "
        f"{t['reviewed']} reviewed, {t['both']} both. Generated {when}; bootstrap seed "
        f"{seed}, {n_resamples} resamples. Definitions: docs/agreement.md.</p>")
    for dim in ("model_version", "product_area"):
        _rates_over_time(page, qv, dim, period, seed, n_resamples)
    _corrected_table(page, corrected)
    _agreement(page, summary)
    _reviewers(page, summary)
    _calibration(page, calibrations or [])
    _golden(page, manifest, qv.schema.categories
            if manifest is not None and manifest.schema_id == qv.schema.id else [])
    data = json.dumps({"agreement": summary, "corrected": corrected}, sort_keys=True,
                      default=str).replace("</", "<\\/")
    body = "\n".join(page.parts)
    document = (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
                f"<title>ls-llmtrace report: {html.escape(qv.queue)}</title>"
                f"<style>{_STYLE}</style></head><body>\n{body}\n"
                f"<script type=application/json id=figures>{data}</script>\n"
                "</body></html>\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(path)
    return path
