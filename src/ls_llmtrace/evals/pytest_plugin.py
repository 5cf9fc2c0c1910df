"""A pytest plugin: ``pytest --llmtrace-golden SET`` makes each golden case a test.

Registered through the ``pytest11`` entry point, so installing ls-llmtrace is enough::

    pytest --llmtrace-golden golden/<set_id> --llmtrace-candidates candidates.jsonl
    pytest --llmtrace-golden golden/<set_id> --llmtrace-endpoint http://host/v1 \\
        --llmtrace-model my-model [--llmtrace-concurrency 8] [--llmtrace-judge rules]

Without test paths on the command line only the golden cases run; with paths, both.
Each case is marked with its categories: ``-m "llmtrace_category(name='ignored_tool_result')"``.
The candidates are got and scored once, on the first case that runs (generation with
the store's cache, like ``eval run``); each case then passes or fails with the failing
check and its category. Nothing is stored as a run: the CI's JUnit report is pytest's.
Importing this module costs nothing until the option is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ls_llmtrace.evals.gate import CaseResult


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmtrace", "ls-llmtrace golden sets")
    group.addoption("--llmtrace-golden", metavar="SET", default=None,
                    help="Golden set (its folder or cases.jsonl): each case becomes a test.")
    group.addoption("--llmtrace-candidates", metavar="FILE", default=None,
                    help='Candidate outputs, JSONL of {"case_id", "output"}.')
    group.addoption("--llmtrace-endpoint", metavar="URL", default=None,
                    help="Generate candidates with this OpenAI-compatible API base.")
    group.addoption("--llmtrace-model", default=None, help="Model to generate with.")
    group.addoption("--llmtrace-temperature", type=float, default=0.0)
    group.addoption("--llmtrace-concurrency", type=int, default=8)
    group.addoption("--llmtrace-judge", choices=["none", "rules", "llm"], default=None)
    group.addoption("--llmtrace-config", metavar="FILE", default=None, help="Gate config.")


def _cases_file(config: pytest.Config) -> Path | None:
    given = config.getoption("--llmtrace-golden")
    if not given:
        return None
    from ls_llmtrace.evals.cases import cases_path

    return cases_path(Path(given)).resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llmtrace_category(name): a golden case's failure "
                            "category (set by the ls-llmtrace plugin)")
    path = _cases_file(config)
    if path is None:
        return
    if not path.is_file():
        raise pytest.UsageError(f"--llmtrace-golden: no golden set at {path}")
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    config.args = [*config.args, str(path)] if explicit else [str(path)]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    path = _cases_file(parent.config)
    if path is not None and file_path.resolve() == path:
        return GoldenFile.from_parent(parent, path=file_path)
    return None


class GoldenRun:
    """Candidates and scores of the whole set, computed once."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config = config
        self.path = path
        self._results: dict[str, CaseResult] | None = None
        self._error: str | None = None

    def results(self) -> dict[str, CaseResult]:
        """The scored set; an error of the run (a bad config, no endpoint) fails every
        case with the same one-line message, and is not retried per case."""
        from ls_llmtrace.errors import LLMTraceError

        if self._error is not None:
            pytest.fail(self._error, pytrace=False)
        if self._results is None:
            try:
                self._results = self._compute()
            except LLMTraceError as exc:
                self._error = f"the golden set could not be run: {exc}"
                pytest.fail(self._error, pytrace=False)
        return self._results

    def _compute(self) -> dict[str, CaseResult]:
        from ls_llmtrace import settings
        from ls_llmtrace.errors import ConfigError
        from ls_llmtrace.evals.candidates import GenerationConfig
        from ls_llmtrace.evals.gate import load_gate_config, run_gate

        opt = self.config.getoption
        gate = load_gate_config(Path(opt("--llmtrace-config"))
                                if opt("--llmtrace-config") else None)
        if opt("--llmtrace-judge"):
            gate = gate.model_copy(update={"judge": opt("--llmtrace-judge")})
        candidates = opt("--llmtrace-candidates")
        generation = None
        if opt("--llmtrace-endpoint"):
            if not opt("--llmtrace-model"):
                raise ConfigError("--llmtrace-endpoint needs --llmtrace-model")
            generation = GenerationConfig(
                opt("--llmtrace-endpoint"), opt("--llmtrace-model"),
                opt("--llmtrace-temperature"), opt("--llmtrace-concurrency"),
                settings.candidate_api_key(), settings.llm_timeout(),
                settings.llm_max_retries(), settings.llm_retry_base())
        run = run_gate(self.path, gate, candidates_file=Path(candidates) if candidates else None,
                       generation=generation, save=False)
        return {r.case_id: r for r in run.results}


class GoldenFile(pytest.File):
    def collect(self) -> Any:
        from ls_llmtrace.evals.cases import read_cases

        run = GoldenRun(self.config, self.path)
        for case in read_cases(self.path):
            item = GoldenItem.from_parent(self, name=case.case_id, run=run)
            for group in case.categories or [case.kind]:
                item.add_marker(pytest.mark.llmtrace_category(name=group))
            yield item


class GoldenCaseFailed(Exception):
    """A golden case failed a check (the message names the check and the category)."""


class GoldenItem(pytest.Item):
    def __init__(self, *, run: GoldenRun, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run = run

    def runtest(self) -> None:
        result = self.run.results()[self.name]
        if result.status == "skipped":
            pytest.skip("no check applies to this golden case")
        if not result.passed:
            raise GoldenCaseFailed(result.failure_message() or result.status)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, GoldenCaseFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"golden case {self.name}"
