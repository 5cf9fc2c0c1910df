"""The gate's JUnit XML: one ``testcase`` per golden case (pure apart from the write).

``classname`` is ``golden.<category>`` (the case's first category; ``golden.control`` for
a control, ``golden.uncategorized`` otherwise), so CI tools group the cases by failure
category. A failing case has a ``failure`` whose message names the check and the
category; a case without a candidate has an ``error``; a case no check applies to is
``skipped``. Every check's outcome is in ``system-out``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ls_llmtrace.evals.gate import CONTROL, UNCATEGORIZED, CaseResult, GateRun


def classname(result: CaseResult) -> str:
    group = result.groups[0]
    name = {CONTROL: "control", UNCATEGORIZED: "uncategorized"}.get(group, group)
    return f"golden.{name}"


def _details(result: CaseResult) -> str:
    lines = [f"{'PASS' if c.passed else 'FAIL'} {c.check}"
             f"{f' [{c.category}]' if c.category else ''}: {c.detail}" for c in result.checks]
    return "\n".join(lines)


def junit_tree(run: GateRun) -> ET.ElementTree:
    t = run.totals
    attrs = {"name": f"llmtrace-golden {run.set_id}", "tests": str(t.get("cases", 0)),
             "failures": str(t.get("fail", 0)), "errors": str(t.get("error", 0)),
             "skipped": str(t.get("skipped", 0)), "time": "0",
             "timestamp": run.created_at.isoformat()}
    root = ET.Element("testsuites", {k: attrs[k] for k in ("name", "tests", "failures",
                                                          "errors", "skipped", "time")})
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for key, value in (("run_id", run.run_id), ("name", run.name), ("set_id", run.set_id)):
        ET.SubElement(props, "property", {"name": key, "value": value})
    for result in run.results:
        case = ET.SubElement(suite, "testcase", {"classname": classname(result),
                                                 "name": result.case_id, "time": "0"})
        message = result.failure_message()
        if result.status == "fail":
            ET.SubElement(case, "failure", {"message": message or "failed",
                                            "type": "check"}).text = _details(result)
        elif result.status == "error":
            ET.SubElement(case, "error", {"message": message or "error",
                                          "type": "candidate"}).text = result.error
        elif result.status == "skipped":
            ET.SubElement(case, "skipped", {"message": "no check applies to this case"})
        if result.checks:
            ET.SubElement(case, "system-out").text = _details(result)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(run: GateRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(run).write(path, encoding="utf-8", xml_declaration=True)
