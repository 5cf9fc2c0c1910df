"""A synthetic labeled set with planted failure modes, for the failure clusters' evaluation.

Seven modes; each failure's explanation is put together from one of several phrasings with
random fillers, so the words vary within a mode (and some words, e.g. "answer", "document",
are shared across modes). Categories are the coarse ones of the default schema (two modes
share "hallucination"), spans quote the wrong words, and the corrected output differs from
the bad one where the mode says. Modes lean to a model version and a product area.
``planted(seed)`` gives the traces, the reviewer records and the truth (trace id -> mode).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from ls_llmtrace.models import AnnotationRecord, Scope, Source, Trace

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

_FILL = {
    "event": ["the launch", "the board meeting", "the product release", "the merger",
              "the deadline", "the conference", "the office opening"],
    "year": ["2019", "2020", "2021", "2022", "2023", "1998"],
    "month": ["March", "June", "October", "January", "August"],
    "days": ["14-day", "30-day", "60-day", "90-day", "lifetime"],
    "perk": ["free returns", "a full refund", "store credit", "a money-back guarantee",
             "free exchanges"],
    "tool": ["weather tool", "inventory lookup", "order status API", "stock checker",
             "calendar tool", "shipping tracker"],
    "said": ["rain", "out of stock", "delayed", "cancelled", "closed", "sold out"],
    "claimed": ["sunny", "available", "on time", "confirmed", "open", "in stock"],
    "steps": ["five steps", "four items", "three reasons", "six stages", "all the options"],
    "gave": ["two", "only one", "three", "half"],
    "lang": ["Spanish", "French", "German", "Portuguese", "Italian"],
    "pii": ["email address", "home address", "phone number", "account number",
            "date of birth"],
    "who": ["another customer", "a different user", "someone else", "an unrelated client"],
    "amount": ["total", "sum", "discount", "tax", "monthly fee", "subtotal"],
    "num": ["42", "118", "7.50", "19.99", "250", "1,200"],
}

_MODES: dict[str, dict[str, Any]] = {
    "wrong_date": {
        "phrasings": [
            "The answer gives the wrong year for {event}: it says {year}.",
            "Incorrect date: {event} happened in {month}, not as stated.",
            "States {event} was in {year}, but the document gives a different year.",
            "Date is off for {event}; the source says {month} {year}.",
            "Wrong day and month for {event}.",
            "The timeline is wrong, {event} did not take place in {year}.",
        ],
        "categories": ["hallucination"], "span": "wrong_fact",
        "model": "m-2024-05", "area": "company-news",
    },
    "invented_policy": {
        "phrasings": [
            "Invents a {days} refund policy that no document mentions.",
            "Made up {perk}; the policy pages say nothing like it.",
            "Claims customers get {perk}, which is not our policy.",
            "Promises a {days} guarantee that does not exist.",
            "Fabricated return terms: {perk} is not offered.",
            "The refund rules in the answer are invented, no {days} window exists.",
        ],
        "categories": ["hallucination"], "span": "unsupported_claim",
        "model": "m-2024-08", "area": "billing",
    },
    "ignored_tool": {
        "phrasings": [
            "The {tool} returned {said} but the answer says {claimed}.",
            "Ignores what the {tool} reported ({said}).",
            "Contradicts the tool output: {tool} said {said}.",
            "Answer says {claimed} although the {tool} result was {said}.",
            "Did not use the {tool} result at all.",
            "The {tool} response was {said}; the reply overlooks it.",
        ],
        "categories": ["ignored_tool_result"], "span": "wrong_fact",
        "model": "m-2024-08", "area": "orders",
    },
    "truncated": {
        "phrasings": [
            "The answer stops mid-sentence.",
            "Cut off before finishing: asked for {steps}, gave {gave}.",
            "Incomplete, lists {gave} of the {steps} requested.",
            "Response ends abruptly halfway through.",
            "Only {gave} of {steps} are covered, the rest is missing.",
            "Truncated reply; the last part never arrives.",
        ],
        "categories": ["incomplete"], "span": None,
        "model": "m-2024-05", "area": "how-to",
    },
    "wrong_language": {
        "phrasings": [
            "Replies in {lang} though the user wrote in English.",
            "Wrong language: the answer is in {lang}.",
            "The user asked in English and got a {lang} answer.",
            "Answered in {lang} instead of English.",
            "Language mismatch, response written in {lang}.",
        ],
        "categories": ["off_topic"], "span": None,
        "model": "m-2024-08", "area": "support",
    },
    "pii_leak": {
        "phrasings": [
            "Reveals the {pii} of {who}.",
            "Leaks personal data: shows {who}'s {pii}.",
            "Privacy breach, the answer includes a {pii} belonging to {who}.",
            "Discloses {who}'s {pii} to the user.",
            "Exposes private information ({pii}) of {who}.",
        ],
        "categories": ["unsafe"], "span": "unsafe_content",
        "model": "m-2024-05", "area": "accounts",
    },
    "bad_math": {
        "phrasings": [
            "The {amount} is miscalculated: it should be {num}.",
            "Arithmetic error in the {amount}.",
            "Computes the {amount} wrong, the correct figure is {num}.",
            "Wrong {amount}: adding the items up gives {num}.",
            "The math is off; {amount} does not add up.",
            "Calculation mistake, the {amount} shown is not {num}.",
        ],
        "categories": ["incomplete"], "span": "wrong_fact",
        "model": "m-2024-08", "area": "billing",
    },
}

MODES = tuple(_MODES)


def _fill(text: str, rng: random.Random) -> str:
    for key, values in _FILL.items():
        while "{" + key + "}" in text:
            text = text.replace("{" + key + "}", rng.choice(values), 1)
    return text


def planted(seed: int = 0, sizes: tuple[int, int] = (10, 40), project_id: int = 1,
            schema_version: int = 2,
            ) -> tuple[list[Trace], list[AnnotationRecord], dict[str, str]]:
    """(traces, reviewer records, truth) of the planted set; a few passing traces too."""
    rng = random.Random(seed)
    traces: list[Trace] = []
    records: list[AnnotationRecord] = []
    truth: dict[str, str] = {}
    number = 0
    for mode, spec in _MODES.items():
        for _ in range(rng.randint(*sizes)):
            number += 1
            trace_id = f"pm-{number:04d}"
            explanation = _fill(rng.choice(spec["phrasings"]), rng)
            wrong = _fill(rng.choice(["{year}", "{claimed}", "{num}", "{perk}"]), rng)
            right = _fill(rng.choice(["{month}", "{said}", "{num}", "{days}"]), rng)
            bad = f"Here is what I found: {wrong}. Let me know if you need more."
            corrected = f"Here is what I found: {right}. Let me know if you need more."
            # The modes lean to a model version and an area (80%), else any.
            model = spec["model"] if rng.random() < 0.8 else rng.choice(
                ["m-2024-05", "m-2024-08"])
            area = spec["area"] if rng.random() < 0.8 else rng.choice(
                [s["area"] for s in _MODES.values()])
            traces.append(Trace.model_validate({
                "trace_id": trace_id, "messages": [{"role": "user", "content": "question"}],
                "output": bad, "metadata": {"model_version": model, "product_area": area}}))
            when = T0 + timedelta(hours=number)
            key = f"ls:{project_id}:{number}"
            records.append(AnnotationRecord(
                record_key=key, trace_id=trace_id, schema_id="default",
                schema_version=schema_version, source=Source.reviewer, label="fail",
                labels=list(spec["categories"]), explanation=explanation,
                corrected_output=corrected, author="rev@example.com", created_at=when,
                updated_at=when, ls_project_id=project_id, ls_task_id=number,
                ls_annotation_id=number))
            if spec["span"]:
                start = bad.index(wrong)
                records.append(AnnotationRecord(
                    record_key=f"{key}:span0", trace_id=trace_id, schema_id="default",
                    schema_version=schema_version, source=Source.reviewer,
                    scope=Scope(kind="text_range", target="answer", start=start,
                                end=start + len(wrong), text=wrong),
                    labels=[spec["span"]], author="rev@example.com", created_at=when,
                    updated_at=when, ls_project_id=project_id, ls_task_id=number,
                    ls_annotation_id=number))
            truth[trace_id] = mode
    for extra in range(10):
        number += 1
        trace_id = f"pm-{number:04d}"
        traces.append(Trace.model_validate({"trace_id": trace_id, "output": "fine"}))
        records.append(AnnotationRecord(
            record_key=f"ls:{project_id}:{number}", trace_id=trace_id, schema_id="default",
            schema_version=schema_version, source=Source.reviewer, label="pass",
            author="rev@example.com", created_at=T0 + timedelta(hours=number, minutes=extra),
            ls_project_id=project_id, ls_task_id=number, ls_annotation_id=number))
    return traces, records, truth
