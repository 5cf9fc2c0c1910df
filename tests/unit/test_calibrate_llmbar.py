"""Calibration by choosing a judge configuration on LLMBar Natural (real judges' recorded
verdicts in both orders, expert labels): chosen on a train split, reported on the held-out
split with intervals; the choice and the held-out figures recounted by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ls_llmtrace.evals.calibrate import choose_recorded_pairwise

FIXTURE = Path(__file__).parents[1] / "fixtures" / "llmbar-natural" / "verdicts.json"
DATA = json.loads(FIXTURE.read_text(encoding="utf-8"))
RUNS = {name: (run["first"], run["second"]) for name, run in DATA["evaluators"].items()}
HUMAN = DATA["labels"]


def _average(name: str, part: list[int]) -> float:
    first, second = RUNS[name]
    right = sum((first[i] == HUMAN[i]) + (second[i] == HUMAN[i]) for i in part)
    return right / (2 * len(part))


@pytest.mark.parametrize("seed", [0, 1])
def test_chosen_on_train_reported_on_held_out(seed: int) -> None:
    found = choose_recorded_pairwise(HUMAN, RUNS, train_share=0.5, seed=seed, missing="2",
                                     resamples=1000)
    train, test = found["train_index"], found["test_index"]
    assert len(train) == len(test) == 50 and not set(train) & set(test)
    assert sorted(HUMAN[i] for i in train).count("1") == sorted(
        HUMAN[i] for i in test).count("1")  # stratified: 50/50 of each preference
    assert found["configurations"] == 65
    # the choice: the best train accuracy, recounted by hand (no held-out pair used)
    best = max(_average(n, train) for n in RUNS)
    assert _average(found["chosen"], train) == pytest.approx(best)
    assert found["train"]["accuracy_average"]["value"] == pytest.approx(best)
    # the held-out figure, recounted, inside its interval
    held = found["test"]["accuracy_average"]
    assert held["value"] == pytest.approx(_average(found["chosen"], test))
    assert held["low"] <= held["value"] <= held["high"]
    assert held["high"] - held["low"] > 0.05  # 50 pairs cannot pin it down
    # the peeking choice reports at least as much: what the held-out split protects from
    peek = found["best_on_test"]["test"]["accuracy_average"]["value"]
    assert peek >= held["value"] and found["test_rank_of_chosen"] >= 1
    print(f"LLMBar Natural, seed {seed}: chosen {found['chosen']} (train accuracy "
          f"{best:.3f}); held-out accuracy (order-averaged) {held['value']:.3f} "
          f"[{held['low']:.3f}, {held['high']:.3f}], both orders right "
          f"{found['test']['accuracy_both']['value']:.3f}, consistency "
          f"{found['test']['consistency']['value']:.3f}; rank on held-out "
          f"{found['test_rank_of_chosen']}/65; best on held-out "
          f"{found['best_on_test']['name']} {peek:.3f}")
