"""The learned evaluator: a small text classifier trained on the reviewers' labels.

Training data: the deciding reviewer record of each trace (ground truth first, else the
latest; cancelled and deleted ones left out) for one schema version, joined to the trace
kept in the store, converted exactly as its task was (so training and prediction read the
same text). Features: TF-IDF of the answer, TF-IDF of the conversation, and a few
shape features (lengths, list items, digits); the model is a class-balanced logistic
regression (scikit-learn). Deterministic: the same labels give the same model.

Its version is a counter bumped each time it is retrained on a different set of labels,
kept with a fingerprint of those labels in ``<home>/learned/<schema>.json`` beside the
fitted model (``.joblib``): a restarted backend loads it at once and keeps its version
(and Label Studio keeps its predictions); the next labelling webhook retrains.
Below ``LS_LLMTRACE_LEARNED_MIN_LABELS`` labels, or with one verdict only, there is no
model and the caller falls back to the rule judge.

What ``calibrate`` may choose (:class:`LearnedParams`): which feature groups, the
regularization ``C``, the longest n-gram, and a decision threshold on P(passing). The
active calibration of a schema version (in the store) is read at each training; its
settings are part of the label fingerprint, so a new calibration is a new model version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from ls_llmtrace.errors import ConfigError
from ls_llmtrace.ingest.convert import ReviewOptions, task_data
from ls_llmtrace.judging.judges.base import Verdict, apply_threshold
from ls_llmtrace.judging.judges.fewshot import deciding_records
from ls_llmtrace.models import Trace
from ls_llmtrace.store import Store

log = logging.getLogger("ls_llmtrace.judge.learned")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    conversation: str
    answer: str


def example_from_task(data: dict[str, Any]) -> Example:
    """The text the model sees of a task: its conversation and its answer, as shown to
    reviewers. Training and prediction both go through here."""
    messages = data.get("messages")
    parts = [f"{m.get('role', '')}: {m.get('content', '')}" for m in messages or []
             if isinstance(m, dict)] if isinstance(messages, list) else []
    return Example("\n".join(parts), str(data.get("answer") or ""))


def example_from_trace(trace: Trace, options: ReviewOptions | None = None) -> Example:
    """A stored trace as the model sees its task: converted as on import (same
    placeholders, redaction and limits), then :func:`example_from_task`."""
    return example_from_task(task_data(trace, options))


def _shape(example: Example) -> list[float]:
    answer = example.answer
    words = max(1, len(answer.split()))
    return [
        np.log1p(len(answer)) / 10,
        np.log1p(len(example.conversation)) / 10,
        len(_LIST_ITEM.findall(answer)) / 10,
        sum(c.isdigit() for c in answer) / max(1, len(answer)),
        sum(w[:1].isupper() for w in answer.split()) / words,
    ]


FEATURE_GROUPS = ("answer", "conversation", "shape")


@dataclass(frozen=True)
class LearnedParams:
    """The learned evaluator's settings; the defaults are what it uses uncalibrated."""

    features: tuple[str, ...] = FEATURE_GROUPS  # TF-IDF of the answer / conversation, shape
    c: float = 2.0  # inverse L2 regularization strength of the logistic regression
    ngram_max: int = 2  # word n-grams from 1 to this
    threshold: float | None = None  # fail when P(passing) < threshold; None: likeliest label

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURE_GROUPS]
        if unknown or not self.features:
            raise ConfigError(f"learned evaluator features {list(self.features)}: choose "
                              f"among {list(FEATURE_GROUPS)}")
        if not self.c > 0 or self.ngram_max < 1:
            raise ConfigError(f"learned evaluator C {self.c} must be > 0 and ngram_max "
                              f"{self.ngram_max} >= 1")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"decision threshold {self.threshold} is not within 0..1")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features)
        return out

    @classmethod
    def from_dict(cls, given: dict[str, Any]) -> LearnedParams:
        threshold = given.get("threshold")
        return cls(features=tuple(given.get("features") or FEATURE_GROUPS),
                   c=float(given.get("c", 2.0)), ngram_max=int(given.get("ngram_max", 2)),
                   threshold=None if threshold is None else float(threshold))

    def describe(self) -> str:
        threshold = "" if self.threshold is None else \
            f", fail below P(pass) {self.threshold:g}"
        return (f"features {'+'.join(self.features)}, C {self.c:g}, n-grams 1-"
                f"{self.ngram_max}{threshold}")


class TextModel:
    """TF-IDF (answer, conversation) + shape features -> logistic regression."""

    def __init__(self, params: LearnedParams | None = None) -> None:
        self.params = params or LearnedParams()
        ngrams = (1, self.params.ngram_max)
        self.answer_vec = TfidfVectorizer(ngram_range=ngrams, min_df=1, max_features=20000,
                                          sublinear_tf=True)
        self.conversation_vec = TfidfVectorizer(ngram_range=ngrams, min_df=1,
                                                max_features=20000, sublinear_tf=True)
        self.classifier = LogisticRegression(max_iter=2000, class_weight="balanced",
                                             C=self.params.c)

    def _matrix(self, examples: list[Example], fit: bool) -> csr_matrix:
        # models saved before calibration existed have no params: they used the defaults
        features = getattr(self, "params", LearnedParams()).features
        blocks = []
        if "answer" in features:
            answers = [e.answer for e in examples]
            blocks.append(self.answer_vec.fit_transform(answers) if fit
                          else self.answer_vec.transform(answers))
        if "conversation" in features:
            conversations = [e.conversation for e in examples]
            blocks.append(self.conversation_vec.fit_transform(conversations) if fit
                          else self.conversation_vec.transform(conversations))
        if "shape" in features:
            blocks.append(csr_matrix(np.array([_shape(e) for e in examples], dtype=float)))
        return csr_matrix(hstack(blocks))

    def fit(self, examples: list[Example], labels: list[str]) -> TextModel:
        self.classifier.fit(self._matrix(examples, fit=True), labels)
        return self

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.classifier.classes_]

    def predict_proba(self, examples: list[Example]) -> list[dict[str, float]]:
        probabilities = self.classifier.predict_proba(self._matrix(examples, fit=False))
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probabilities]


def training_set(store: Store, schema_id: str, schema_version: int
                 ) -> tuple[list[Example], list[str], list[str]]:
    """(examples, labels, trace ids) of every labelled trace the store also holds."""
    records = [r for r in store.records(source="reviewer")
               if r.schema_id == schema_id and r.schema_version == schema_version]
    options = ReviewOptions.from_settings()  # what the tasks were converted with
    examples, labels, trace_ids = [], [], []
    for trace_id, record in sorted(deciding_records(records).items()):
        trace = store.trace(trace_id)
        if trace is None or record.label is None:
            continue
        examples.append(example_from_trace(trace, options))
        labels.append(record.label)
        trace_ids.append(trace_id)
    return examples, labels, trace_ids


def fingerprint(labels: list[str], trace_ids: list[str],
                params: LearnedParams | None = None) -> str:
    """What the model's version follows: its labels and (when not the defaults) its
    calibrated settings."""
    content: list[Any] = sorted(zip(trace_ids, labels, strict=True))
    if params is not None and params != LearnedParams():
        content = [content, params.as_dict()]
    blob = json.dumps(content, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TrainedModel:
    model: TextModel
    version: int
    label_count: int
    fingerprint: str
    calibration_id: int | None = None  # the store's calibration its settings came from


class LearnedJudge:
    """Predicts with a trained model, in the labels of the config it serves."""

    name = "llmtrace-learned"

    def __init__(self, trained: TrainedModel, passing: str | None) -> None:
        self.trained = trained
        self.passing = passing

    @property
    def version(self) -> str:
        return str(self.trained.version)

    def judge(self, task_data: dict[str, Any]) -> Verdict | None:
        [verdict] = self.judge_many([task_data])
        return verdict

    def judge_many(self, tasks: list[dict[str, Any]]) -> list[Verdict]:
        """Verdicts for many tasks' data in one pass of the model."""
        rows = self.trained.model.predict_proba([example_from_task(t) for t in tasks])
        return [self._verdict(probabilities) for probabilities in rows]

    def _verdict(self, probabilities: dict[str, float]) -> Verdict:
        label = max(sorted(probabilities), key=lambda k: probabilities[k])
        threshold = getattr(self.trained.model, "params", LearnedParams()).threshold
        if self.passing is not None and self.passing in probabilities:
            score = probabilities[self.passing]
            others = sorted(k for k in probabilities if k != self.passing)
            if threshold is not None and others:
                failing = max(others, key=lambda k: probabilities[k])
                probe = Verdict(label, score, "", 0.0)
                label = apply_threshold(probe, threshold, self.passing, failing).label
        else:
            score = probabilities[label]
        confidence = probabilities[label]
        cut = "" if threshold is None else f", fail below P({self.passing}) {threshold:g}"
        return Verdict(
            label=label, score=score, confidence=confidence,
            explanation=(f"Learned evaluator v{self.trained.version} (trained on "
                         f"{self.trained.label_count} reviewer labels{cut}): "
                         f"P({label}) = {confidence:.2f}. It sees wording, not facts: "
                         "check the answer."),
        )


class LearnedRegistry:
    """The trained model of each schema version, retrained on demand, thread-safe."""

    def __init__(self, state_dir: Path, min_labels: int) -> None:
        self.state_dir = state_dir
        self.min_labels = min_labels
        self._models: dict[tuple[str, int], TrainedModel | None] = {}
        self._lock = threading.Lock()

    def _state_file(self, schema_id: str, version: int) -> Path:
        return self.state_dir / f"{schema_id}.v{version}.json"

    def _read_state(self, path: Path) -> dict[str, Any]:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def train(self, store: Store, schema_id: str, schema_version: int) -> TrainedModel | None:
        """(Re)train from the store with the active calibration's settings (the defaults
        without one); the version moves only when the labels or the settings changed."""
        examples, labels, trace_ids = training_set(store, schema_id, schema_version)
        calibration = store.active_calibration("learned", schema_id, schema_version)
        params = LearnedParams.from_dict(calibration.params) if calibration else \
            LearnedParams()
        calibration_id = calibration.calibration_id if calibration else None
        key = (schema_id, schema_version)
        with self._lock:
            if len(labels) < self.min_labels or len(set(labels)) < 2:
                self._models[key] = None
                return None
            mark = fingerprint(labels, trace_ids, params)
            current = self._models.get(key)
            if current is not None and current.fingerprint == mark:
                if current.calibration_id != calibration_id:
                    current = dataclasses.replace(current, calibration_id=calibration_id)
                    self._models[key] = current
                return current
            path = self._state_file(schema_id, schema_version)
            state = self._read_state(path)
            version = int(state.get("version", 0))
            if state.get("fingerprint") != mark:
                version += 1
            trained = TrainedModel(TextModel(params).fit(examples, labels), version,
                                   len(labels), mark, calibration_id)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            model_tmp = path.with_suffix(".joblib.tmp")
            joblib.dump(trained.model, model_tmp)
            model_tmp.replace(path.with_suffix(".joblib"))
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": version, "fingerprint": mark,
                                       "labels": len(labels),
                                       "calibration_id": calibration_id}), encoding="utf-8")
            tmp.replace(path)
            self._models[key] = trained
            return trained

    def refresh(self, store_factory: Any, schema_id: str, schema_version: int
                ) -> TrainedModel | None:
        """The model, retrained when the store's active calibration is not the one it was
        trained with (``calibrate`` ran since); the backend calls this on ``/setup``."""
        key = (schema_id, schema_version)
        with self._lock:
            known = key in self._models
            current = self._models.get(key)
        if not known:
            current = self.get(store_factory, schema_id, schema_version)
        with store_factory() as store:
            calibration = store.active_calibration("learned", schema_id, schema_version)
            wanted = calibration.calibration_id if calibration else None
            if current is not None and current.calibration_id == wanted:
                return current
            if current is None and wanted is None:
                return None
            return self.train(store, schema_id, schema_version)

    def get(self, store_factory: Any, schema_id: str, schema_version: int
            ) -> TrainedModel | None:
        """The model of a schema version: in memory, else the one saved by the last
        training (a restart answers at once), else trained from the store now."""
        key = (schema_id, schema_version)
        with self._lock:
            if key in self._models:
                return self._models[key]
            saved = self._load(schema_id, schema_version)
            if saved is not None:
                self._models[key] = saved
                return saved
        with store_factory() as store:
            return self.train(store, schema_id, schema_version)

    def _load(self, schema_id: str, schema_version: int) -> TrainedModel | None:
        path = self._state_file(schema_id, schema_version)
        state = self._read_state(path)
        model_file = path.with_suffix(".joblib")
        if not state or not model_file.exists():
            return None
        try:
            # our own file, written by train() into the backend's home (pickle format)
            model = joblib.load(model_file)
        except Exception as exc:  # an unreadable model is retrained, never fatal
            log.warning("saved model %s not loadable (%s); retraining", model_file,
                        exc.__class__.__name__)
            return None
        if not isinstance(model, TextModel):
            return None
        given = state.get("calibration_id")
        return TrainedModel(model, int(state["version"]), int(state.get("labels", 0)),
                            str(state.get("fingerprint")),
                            int(given) if isinstance(given, int) else None)

    def known(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._models)

    def versions(self) -> dict[str, int | None]:
        """Schema version id -> model version (None: not enough labels yet)."""
        with self._lock:
            return {f"{sid}@v{ver}": (m.version if m else None)
                    for (sid, ver), m in self._models.items()}
