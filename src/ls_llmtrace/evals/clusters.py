"""Failure clusters: the failed traces of a queue grouped by what the reviewers wrote and marked.

Each failure becomes one text: the explanation, the categories, the span labels with the
words they quote, and the words the corrected output removed from and added to the bad
output (:mod:`difflib`, word level). The texts are embedded and clustered with KMeans
(seeded, ``n_init`` restarts) on unit-length vectors, k chosen by the silhouette score
(cosine); a cluster is named by its top class-based TF-IDF terms (c-TF-IDF: a term's
frequency in the cluster against its frequency in all failures).

Embeddings: WordLlama (``wordllama``), static token embeddings distilled from an LLM's
embedding table, averaged per text. Its weights and tokenizer ship inside the wheel, so
nothing is downloaded at run time (it works with no network and ``HF_HUB_OFFLINE=1``), it
needs no torch, and it embeds thousands of short texts a second on one CPU core. It knows
that "wrong date" and "incorrect year" are close, which TF-IDF does not. The package's own
``WordLlama.load()`` looks for the bundled tokenizer in the wrong folder and then tries
Hugging Face, so the files are opened here directly. When wordllama cannot be imported or
loaded, TF-IDF vectors (scikit-learn, reduced by truncated SVD) are the fallback and the
report says so.

Deciding records: :func:`ls_llmtrace.evals.golden.decide`, the golden set's rule (ground
truth, then the owner's adjudication, then the latest review; the span records of the same
annotation; older versions migrated).
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ls_llmtrace import settings
from ls_llmtrace.errors import ConfigError, LLMTraceError
from ls_llmtrace.evals.golden import decide
from ls_llmtrace.ingest.queues import required, schema_of
from ls_llmtrace.labelstudio.client import LabelStudioClient
from ls_llmtrace.models import AnnotationRecord, Trace
from ls_llmtrace.schema.model import AnnotationSchema
from ls_llmtrace.store import Store

log = logging.getLogger("ls_llmtrace.evals.clusters")

Method = Literal["auto", "wordllama", "tfidf"]
MIN_FAILURES = 10
MAX_K = 20
EXAMPLES = 3
_SILHOUETTE_SAMPLE = 2000
_WORD = re.compile(r"\w+(?:['-]\w+)*")


class TooFewFailures(LLMTraceError):
    """Fewer failures than clustering needs (``MIN_FAILURES`` by default): exit 4."""

    exit_code = 4


@dataclass(frozen=True)
class Failure:
    """One failed trace as the clustering reads it."""

    trace_id: str
    text: str
    explanation: str | None = None
    quotes: str = ""  # the spans' quoted words and the output diff: names without explanations
    categories: tuple[str, ...] = ()
    span_labels: tuple[str, ...] = ()
    model_version: str | None = None
    product_area: str | None = None
    at: datetime | None = None
    task_id: int | None = None
    project_id: int | None = None


@dataclass
class Cluster:
    id: str
    name: str
    terms: list[str]
    size: int
    share: float
    trace_ids: list[str]
    examples: list[dict[str, Any]]
    categories: dict[str, int]
    concentrations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ClusterReport:
    failures: int
    method: str
    k: int
    seed: int
    silhouette: float | None
    clusters: list[Cluster]
    fallback_reason: str | None = None
    assignments: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"failures": self.failures, "method": self.method, "k": self.k,
                "seed": self.seed, "silhouette": self.silhouette,
                "fallback_reason": self.fallback_reason,
                "clusters": [c.as_json() for c in self.clusters]}


# the text of a failure ---------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return _WORD.findall(text or "")


def output_diff(bad: str | None, corrected: str | None) -> tuple[list[str], list[str]]:
    """(words the correction removed, words it added), word-level ``difflib`` opcodes."""
    if not bad or not corrected:
        return [], []
    a, b = _words(bad), _words(corrected)
    removed: list[str] = []
    added: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            removed += a[i1:i2]
        if op in ("replace", "insert"):
            added += b[j1:j2]
    return removed, added


def _name_words(name: str) -> str:
    return name.replace("_", " ").replace("-", " ")


def failure_text(record: AnnotationRecord, spans: Sequence[AnnotationRecord],
                 bad_output: str | None) -> str:
    """What the reviewer wrote and marked, as one text."""
    parts = [record.explanation or ""]
    parts += [_name_words(c) for c in record.labels]
    for span in spans:
        parts += [_name_words(label) for label in span.labels]
        if span.scope.text:
            parts.append(span.scope.text)
    removed, added = output_diff(bad_output, record.corrected_output)
    if removed:
        parts.append(" ".join(removed[:40]))
    if added:
        parts.append(" ".join(added[:40]))
    return " . ".join(p.strip() for p in parts if p and p.strip())


def _quotes(spans: Sequence[AnnotationRecord], trace: Trace | None,
            record: AnnotationRecord) -> str:
    removed, added = output_diff(trace.output if trace else None, record.corrected_output)
    return " ".join([*(s.scope.text or "" for s in spans), *removed, *added])


def failures_from_records(records: Sequence[AnnotationRecord], schema: AnnotationSchema,
                          trace_of: Callable[[str], Trace | None],
                          schema_dir: Path | None = None,
                          ) -> tuple[list[Failure], int]:
    """(the failures, how many traces have a deciding verdict at all) of reviewer records:
    the golden set's deciding records (:func:`ls_llmtrace.evals.golden.decide`, older
    versions migrated through ``schema_dir``'s migration files) that are failing."""
    deciding = decide(list(records), schema, schema_dir)
    failures = []
    for trace_id, decided in sorted(deciding.items()):
        record, own = decided.record, decided.spans
        if not schema.is_failing(record.label):
            continue
        trace = trace_of(trace_id)
        meta = trace.metadata if trace else None
        failures.append(Failure(
            trace_id=trace_id,
            text=failure_text(record, own, trace.output if trace else None),
            explanation=record.explanation, quotes=_quotes(own, trace, record),
            categories=tuple(record.labels),
            span_labels=tuple(dict.fromkeys(lab for s in own for lab in s.labels)),
            model_version=meta.model_version if meta else None,
            product_area=meta.product_area if meta else None,
            at=record.created_at or record.updated_at,
            task_id=record.ls_task_id, project_id=record.ls_project_id))
    return failures, len(deciding)


def queue_failures(store: Store, queue_name: str, schema_dir: Path | None = None,
                   ) -> tuple[list[Failure], int, AnnotationSchema]:
    """The failures of a queue (every project it has had), the reviewed trace count, and
    the queue's current schema."""
    queue = required(store, queue_name)
    schema = schema_of(queue, schema_dir)
    projects = {int(p["project_id"]) for p in store.projects() if p["queue"] == queue_name}
    projects.add(queue.project_id)
    records = [r for r in store.records(source="reviewer") if r.ls_project_id in projects]
    failures, reviewed = failures_from_records(records, schema, store.trace,
                                               schema_dir or settings.schema_dir())
    return failures, reviewed, schema


# embeddings ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _wordllama() -> Any:
    import wordllama
    from safetensors import safe_open
    from tokenizers import Tokenizer

    root = Path(wordllama.__file__).parent
    with safe_open(str(root / "weights" / "l2_supercat_256.safetensors"), framework="np",
                   device="cpu") as f:
        table = f.get_tensor("embedding.weight")
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    return wordllama.WordLlamaInference(table, tokenizer)


def _tfidf(texts: Sequence[str], seed: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(stop_words="english", sublinear_tf=True,
                             ngram_range=(1, 2), min_df=1).fit_transform(texts)
    components = min(100, matrix.shape[1] - 1, matrix.shape[0] - 1)
    if components < 2:
        return np.asarray(matrix.todense(), dtype=np.float64)
    return np.asarray(TruncatedSVD(components, random_state=seed).fit_transform(matrix))


def embed(texts: Sequence[str], method: Method = "auto", seed: int = 0,
          ) -> tuple[np.ndarray, str, str | None]:
    """(unit-length vectors, the method used, why wordllama was not used or None)."""
    reason = None
    vectors: np.ndarray | None = None
    used = "tfidf"
    if method in ("auto", "wordllama"):
        try:
            # norm=False: wordllama's own normalizing gives NaN for a text with no tokens
            vectors = np.asarray(_wordllama().embed(list(texts), norm=False),
                                 dtype=np.float64)
            used = "wordllama"
        except Exception as exc:  # any failure to import or load: fall back, say why
            if method == "wordllama":
                raise ConfigError(f"wordllama cannot load: {exc}") from exc
            reason = f"wordllama cannot load ({type(exc).__name__}: {exc})"
            log.warning("%s; clustering on TF-IDF", reason)
    if vectors is None:
        vectors = _tfidf(texts, seed)
    vectors = np.nan_to_num(vectors, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms), used, reason


# clustering ----------------------------------------------------------------------------------

def choose_k(vectors: np.ndarray, seed: int, max_k: int = MAX_K,
             ) -> tuple[np.ndarray, int, float | None]:
    """KMeans labels for the k (2..max_k) with the best cosine silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    distinct = len(np.unique(vectors.round(6), axis=0))
    top = min(max_k, n // 3, distinct)
    if top < 2:
        return np.zeros(n, dtype=int), 1, None
    sample = min(n, _SILHOUETTE_SAMPLE)
    best: tuple[float, int, np.ndarray] | None = None
    for k in range(2, top + 1):
        labels = KMeans(k, n_init=5, random_state=seed).fit_predict(vectors)
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(vectors, labels, metric="cosine", sample_size=sample,
                                       random_state=seed))
        if best is None or score > best[0] + 1e-9:
            best = (score, k, labels)
    if best is None:
        return np.zeros(n, dtype=int), 1, None
    return best[2], best[1], best[0]


MERGE_Z = 2.0
MERGE_Z_EXPLANATIONS = 1.5


def merge_z(failures: Sequence[Failure]) -> float:
    """The merge rule's z for these failures: ``MERGE_Z_EXPLANATIONS`` (merge more) when no
    failure has a category or a span label (a binary queue: the explanations, and the words
    of any correction, are all there is), else ``MERGE_Z``. Picked on the planted modes
    (bench/bench_clusters.py): 2.0 leaves the full-text clusters as pure as without
    merging; 1.5 there would not."""
    if not any(f.categories or f.span_labels for f in failures):
        return MERGE_Z_EXPLANATIONS
    return MERGE_Z


def merge_near_duplicates(vectors: np.ndarray, labels: np.ndarray, z: float,
                          ) -> np.ndarray:
    """Labels with the clusters whose centroids are near-duplicates merged.

    KMeans with k by the best silhouette splits one failure mode by its phrasings when the
    reviewers wrote only explanations. Rule: average-linkage agglomerative clustering
    (scipy) of the KMeans centroids (unit length), cosine; two groups join while the mean
    similarity between their centroids is at least ``mean + z * sd`` of all the pairwise
    centroid similarities. The cut is relative because the level differs by text: full
    texts share label names, so every centroid is close to every other.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    ids = sorted(set(labels.tolist()))
    if len(ids) < 2:
        return labels
    centroids = np.stack([vectors[labels == i].mean(axis=0) for i in ids])
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = centroids / np.where(norms == 0, 1.0, norms)
    matrix = np.clip(centroids @ centroids.T, -1.0, 1.0)  # a zero centroid: 0 to all
    sims = matrix[np.triu_indices(len(ids), 1)]
    cut = float(sims.mean() + z * sims.std()) if len(ids) > 2 else 1.0
    distances = 1.0 - matrix
    np.fill_diagonal(distances, 0.0)
    tree = linkage(squareform(distances, checks=False), method="average")
    groups = fcluster(tree, t=max(1 - cut, 0.0), criterion="distance")
    new = {old: int(g) - 1 for old, g in zip(ids, groups, strict=True)}
    return np.asarray([new[int(label)] for label in labels.tolist()], dtype=int)


def ctfidf_terms(texts_by_cluster: Sequence[str], top: int = 5) -> list[list[str]]:
    """Each cluster's top terms by class-based TF-IDF over the clusters' joined texts."""
    from sklearn.feature_extraction.text import CountVectorizer

    try:
        counts = CountVectorizer(stop_words="english", ngram_range=(1, 2),
                                 token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b"
                                 ).fit(texts_by_cluster)
    except ValueError:  # nothing but stop words
        return [[] for _ in texts_by_cluster]
    tf = counts.transform(texts_by_cluster).toarray().astype(np.float64)
    vocab = counts.get_feature_names_out()
    average = tf.sum() / max(len(texts_by_cluster), 1)
    idf = np.log(1 + average / np.maximum(tf.sum(axis=0), 1))
    scores = tf / np.maximum(tf.sum(axis=1, keepdims=True), 1) * idf
    out = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda i: (-row[i], vocab[i]))
        terms: list[str] = []
        for i in order:
            if row[i] <= 0 or len(terms) >= top:
                break
            term = str(vocab[i])
            # no term that repeats the words of one already picked
            picked = {w for t in terms for w in t.split()}
            if set(term.split()) & picked:
                continue
            terms.append(term)
        out.append(terms)
    return out


def _concentrations(members: Sequence[Failure], everyone: Sequence[Failure],
                    attr: str) -> list[dict[str, Any]]:
    """Values over-represented in the cluster: share in it / share in all failures > 1.2."""
    inside = Counter(getattr(f, attr) for f in members if getattr(f, attr))
    overall = Counter(getattr(f, attr) for f in everyone if getattr(f, attr))
    rows = []
    for value, count in inside.items():
        share = count / len(members)
        lift = share / (overall[value] / len(everyone))
        if count >= 2 and lift > 1.2:
            rows.append({"value": value, "count": count, "share": round(share, 3),
                         "lift": round(lift, 2)})
    return sorted(rows, key=lambda r: (-r["lift"], -r["count"], r["value"]))[:3]


def cluster_failures(failures: Sequence[Failure], seed: int = 0, method: Method = "auto",
                     min_failures: int = MIN_FAILURES, max_k: int = MAX_K,
                     merge: float | Literal["auto"] | None = "auto") -> ClusterReport:
    """Cluster the failures; :class:`TooFewFailures` below ``min_failures``. Then clusters
    with near-duplicate centroids are merged (:func:`merge_near_duplicates`, z ``merge``,
    ``"auto"``: :func:`merge_z`; None: no merging); ``k`` is the count after merging."""
    if len(failures) < min_failures:
        raise TooFewFailures(f"too few failures to cluster: {len(failures)} (need "
                             f"{min_failures}; review more traces or lower --min)")
    ordered = sorted(failures, key=lambda f: f.trace_id)
    vectors, used, reason = embed([f.text for f in ordered], method, seed)
    labels, k, silhouette = choose_k(vectors, seed, max_k)
    if merge is not None and k > 1:
        z = merge_z(ordered) if merge == "auto" else merge
        labels = merge_near_duplicates(vectors, labels, z)
        k = len(set(labels.tolist()))
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        groups.setdefault(int(label), []).append(index)
    # Biggest first; ties by the first trace id, so ids do not depend on KMeans' numbering.
    order = sorted(groups.values(), key=lambda idx: (-len(idx), ordered[idx[0]].trace_id))
    # Named by what the reviewers wrote (the explanation), else by the words they quoted
    # or corrected (label names, shared by many clusters, make poor names), else the text.
    terms = ctfidf_terms([" ".join(ordered[i].explanation or ordered[i].quotes
                                   or ordered[i].text for i in idx) for idx in order])
    clusters = []
    assignments: dict[str, str] = {}
    for number, (idx, top_terms) in enumerate(zip(order, terms, strict=True), 1):
        members = [ordered[i] for i in idx]
        centroid = vectors[idx].mean(axis=0)
        nearest = sorted(idx, key=lambda i: (-float(vectors[i] @ centroid), ordered[i].trace_id))
        cluster_id = f"c{number}"
        for f in members:
            assignments[f.trace_id] = cluster_id
        clusters.append(Cluster(
            id=cluster_id, name=" / ".join(top_terms[:3]) or "unnamed", terms=top_terms,
            size=len(members), share=round(len(members) / len(ordered), 3),
            trace_ids=[f.trace_id for f in members],
            examples=[{"trace_id": ordered[i].trace_id,
                       "explanation": ordered[i].explanation or ordered[i].quotes
                       or ordered[i].text}
                      for i in nearest[:EXAMPLES]],
            categories=dict(Counter(c for f in members for c in f.categories).most_common()),
            concentrations={"model_version": _concentrations(members, ordered,
                                                             "model_version"),
                            "product_area": _concentrations(members, ordered,
                                                            "product_area")}))
    return ClusterReport(failures=len(ordered), method=used, k=k, seed=seed,
                         silhouette=None if silhouette is None else round(silhouette, 4),
                         clusters=clusters, fallback_reason=reason, assignments=assignments)


def label_tasks(client: LabelStudioClient, report: ClusterReport,
                failures: Sequence[Failure]) -> int:
    """Write each failure's cluster id and name into its Label Studio task (data and meta:
    ``llmtrace_cluster``, ``llmtrace_cluster_name``), so reviewers filter by cluster."""
    names = {c.id: c.name for c in report.clusters}
    written = 0
    for f in sorted(failures, key=lambda f: f.trace_id):
        cluster = report.assignments.get(f.trace_id)
        if cluster is None or f.task_id is None:
            continue
        client.merge_task_fields(f.task_id, {"llmtrace_cluster": cluster,
                                             "llmtrace_cluster_name": names[cluster]})
        written += 1
    return written


def growing_clusters(report: ClusterReport, failures: Sequence[Failure],
                     recent_days: float = 7.0, min_recent: int = 3,
                     ratio: float = 2.0) -> list[dict[str, Any]]:
    """Clusters growing in recent failures: at least ``min_recent`` of the failures of the
    last ``recent_days`` (before the newest failure) and a share of them at least ``ratio``
    times their share of the earlier failures. ``new``: none before."""
    times = [f.at for f in failures if f.at is not None]
    if not times:
        return []
    cut = max(times) - timedelta(days=recent_days)
    recent = {f.trace_id for f in failures if f.at is not None and f.at > cut}
    earlier = {f.trace_id for f in failures if f.at is not None and f.at <= cut}
    rows = []
    for c in report.clusters:
        now = sum(t in recent for t in c.trace_ids)
        before = sum(t in earlier for t in c.trace_ids)
        now_share = now / len(recent) if recent else 0.0
        before_share = before / len(earlier) if earlier else 0.0
        if now >= min_recent and now_share > before_share and now_share >= ratio * before_share:
            rows.append({"cluster": c.id, "name": c.name, "recent": now,
                         "recent_failures": len(recent), "recent_share": round(now_share, 3),
                         "earlier": before, "earlier_failures": len(earlier),
                         "earlier_share": round(before_share, 3), "new": before == 0})
    return sorted(rows, key=lambda r: (-r["recent_share"], r["cluster"]))


# planted-mode evaluation ---------------------------------------------------------------------

def purity_recall(assignments: dict[str, str], truth: dict[str, str],
                  ) -> tuple[float, float]:
    """(purity, recall of the planted modes). Purity: the share of failures whose cluster's
    majority mode is their own. A mode is recalled when some cluster has it as its majority
    and holds at least half of that mode's traces."""
    by_cluster: dict[str, Counter[str]] = {}
    for trace_id, cluster in assignments.items():
        by_cluster.setdefault(cluster, Counter())[truth[trace_id]] += 1
    total = sum(sum(c.values()) for c in by_cluster.values())
    purity = sum(c.most_common(1)[0][1] for c in by_cluster.values()) / max(total, 1)
    mode_sizes = Counter(truth[t] for t in assignments)
    recalled = set()
    for counts in by_cluster.values():
        mode, count = counts.most_common(1)[0]
        if count >= math.ceil(mode_sizes[mode] / 2):
            recalled.add(mode)
    return purity, len(recalled) / max(len(mode_sizes), 1)
