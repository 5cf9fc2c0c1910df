"""LLMBar Natural (real judges' verdicts in both presentation orders, expert labels):
``pairwise_agreement`` reproduces the authors' ``statistics.json`` for every judge and
strategy: ``correct_False/True/both/average``, ``equal`` and ``kappa_agreement``.

The authors' definitions (their ``LLMEvaluator/evaluate.py``): the verdict of a pair is
the last step's ``winner`` in each order (mapped back to the original order), compared as
a string with the expert label; ``correct_both`` needs both orders right; ``equal``
compares the two orders' verdicts as given (two missing verdicts are equal);
``kappa_agreement`` is scikit-learn's Cohen's kappa between the orders after coding a
verdict ``1`` when it names output 1 and ``0`` otherwise: a missing verdict counts as
output 2 (our ``missing="2"``). Their ``kappa_False``/``kappa_True`` code the verdicts
0/1 but leave the labels 1/2, so they are not a kappa with the experts; the last test
shows that coding explains their numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import cohen_kappa_score

from ls_llmtrace.evals.agreement import pairwise_agreement

FIXTURE = Path(__file__).parents[1] / "fixtures" / "llmbar-natural" / "verdicts.json"
DATA = json.loads(FIXTURE.read_text(encoding="utf-8"))
EVALUATORS: dict[str, Any] = DATA["evaluators"]


def _count_and_percent(text: str) -> tuple[int, int, float]:
    """``"64 / 100 = 64.0%"`` -> (64, 100, 64.0)."""
    counts, percent = text.split(" = ")
    correct, total = (int(v) for v in counts.split(" / "))
    return correct, total, float(percent.rstrip("%"))


def test_the_fixture_holds_every_judge_and_strategy() -> None:
    judges = {name.split("/")[0] for name in EVALUATORS}
    assert judges == {"GPT-4", "ChatGPT", "ChatGPT-0301", "PaLM2", "LLaMA2", "Falcon"}
    assert len(EVALUATORS) == 65
    assert len(DATA["labels"]) == 100


@pytest.mark.parametrize("name", sorted(EVALUATORS))
def test_reproduces_the_authors_statistics(name: str) -> None:
    run = EVALUATORS[name]
    stats = run["statistics"]
    found = pairwise_agreement(DATA["labels"], run["first"], run["second"], missing="2",
                               n_resamples=0)
    n = found.n
    for key, count, estimate in (
            ("correct_False", found.correct_first, found.accuracy_first),
            ("correct_True", found.correct_second, found.accuracy_second),
            ("correct_both", found.correct_both, found.accuracy_both),
            ("equal", found.consistent, found.consistency)):
        correct, total, percent = _count_and_percent(stats[key])
        assert (count, n) == (correct, total), key
        assert estimate.value is not None
        assert 100 * estimate.value == pytest.approx(percent, abs=1e-9), key
    assert found.accuracy_average.value is not None
    assert 100 * found.accuracy_average.value == pytest.approx(
        float(stats["correct_average"].rstrip("%")), abs=1e-9)
    assert found.kappa_orders.value == pytest.approx(stats["kappa_agreement"], abs=1e-12)


def test_some_runs_have_missing_verdicts_and_still_match() -> None:
    with_missing = [name for name, run in EVALUATORS.items()
                    if None in run["first"] or None in run["second"]]
    assert len(with_missing) >= 5  # the missing-verdict rule is exercised above
    run = EVALUATORS[with_missing[0]]
    as_category = pairwise_agreement(DATA["labels"], run["first"], run["second"],
                                     n_resamples=0)
    # our default (a missing verdict is its own category) gives another kappa
    assert as_category.kappa_orders.value != pytest.approx(
        run["statistics"]["kappa_agreement"], abs=1e-12)


def test_the_authors_kappa_with_the_labels_uses_mismatched_codes() -> None:
    labels = [int(v) for v in DATA["labels"]]
    for run in EVALUATORS.values():
        coded = [1 if v == "1" else 0 for v in run["first"]]
        assert cohen_kappa_score(coded, labels) == pytest.approx(
            run["statistics"]["kappa_False"], abs=1e-12)
