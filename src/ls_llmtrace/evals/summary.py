"""The gate's Markdown summary, fit for a pull-request comment (pure)."""

from __future__ import annotations

from ls_llmtrace.evals.gate import GateRun

MAX_LISTED = 20


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f} pts"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(run: GateRun) -> str:
    t = run.totals
    verdict = "FAILED" if run.regression else "passed"
    lines = [f"### Regression gate {verdict}: {run.name}", "",
             f"Golden set `{run.set_id}`, run `{run.run_id}`: **{t.get('pass', 0)} of "
             f"{t.get('cases', 0) - t.get('skipped', 0)} cases pass** ({_pct(run.pass_rate)}); "
             f"{t.get('fail', 0)} fail, {t.get('error', 0)} without a candidate, "
             f"{t.get('skipped', 0)} skipped."]
    if run.reasons:
        lines += ["", "**Why it failed:** " + "; ".join(run.reasons) + "."]
    c = run.comparison
    if c is not None:
        lines += ["", f"Against baseline `{c.baseline_run_id}` ({c.baseline_name}): pass rate "
                  f"{_pct(c.baseline_pass_rate)} -> {_pct(c.pass_rate)}; on the {c.common} "
                  f"shared cases {_signed(c.delta_common)} (95% CI {_signed(c.ci_low)} to "
                  f"{_signed(c.ci_high)}, {c.ci_method}).",
                  f"Newly failing: {len(c.newly_failing)}; fixed: {len(c.fixed)}; new cases: "
                  f"{len(c.new_cases)}; dropped cases: {len(c.dropped_cases)}."]
    else:
        lines += ["", "No baseline: nothing to compare with."]
    lines += ["", "| category | cases | pass | pass rate |", "|---|---:|---:|---:|"]
    lines += [f"| {_cell(group)} | {s.total} | {s.passed} | {_pct(s.pass_rate)} |"
              for group, s in run.groups.items()]
    by_id = {r.case_id: r for r in run.results}
    if c is not None and c.newly_failing:
        lines += ["", "<details open><summary>Newly failing cases</summary>", "",
                  "| case | why |", "|---|---|"]
        for case_id in c.newly_failing[:MAX_LISTED]:
            lines.append(f"| `{case_id}` | {_cell(by_id[case_id].failure_message() or '')} |")
        if len(c.newly_failing) > MAX_LISTED:
            lines.append(f"| ... | {len(c.newly_failing) - MAX_LISTED} more |")
        lines += ["", "</details>"]
    if c is not None and c.fixed:
        shown = ", ".join(f"`{x}`" for x in c.fixed[:MAX_LISTED])
        extra = f" and {len(c.fixed) - MAX_LISTED} more" if len(c.fixed) > MAX_LISTED else ""
        lines += ["", f"Fixed: {shown}{extra}."]
    failing = [r for r in run.results if r.status in ("fail", "error")
               and (c is None or r.case_id not in c.newly_failing)]
    if failing:
        lines += ["", "<details><summary>Still failing</summary>", "", "| case | why |",
                  "|---|---|"]
        lines += [f"| `{r.case_id}` | {_cell(r.failure_message() or '')} |"
                  for r in failing[:MAX_LISTED]]
        if len(failing) > MAX_LISTED:
            lines.append(f"| ... | {len(failing) - MAX_LISTED} more |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
