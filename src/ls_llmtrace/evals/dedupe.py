"""Near-duplicate inputs of a golden set, collapsed to one case each (pure).

How near-duplicates are measured: the input text of a case (its system prompt and its
messages, in order) is normalized (lower case, punctuation dropped, whitespace collapsed)
and cut into word 5-shingles (a text of fewer than five words is one shingle: itself).
Two inputs are near-duplicates when the Jaccard similarity of their shingle sets is at
least the threshold (default 0.9). The Jaccard similarity is exact, not estimated: the
shingle sets are a binary sparse matrix (scikit-learn's ``CountVectorizer``) and the
intersections of every pair sharing a shingle come from one sparse product.

Collapsing is greedy in the caller's order of preference: the first case of a group is
kept (the caller puts ground truth and corrected failures first) and every later case
within the threshold of a kept one is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

SHINGLE = 5
THRESHOLD = 0.9
_NOT_WORD = re.compile(r"[^\w\s]+")


def normalize(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def shingles(text: str, size: int = SHINGLE) -> list[str]:
    """Word ``size``-shingles of the normalized text (the whole text when shorter)."""
    words = normalize(text).split()
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i:i + size]) for i in range(len(words) - size + 1)]


def keep_mask(texts: Sequence[str], threshold: float = THRESHOLD,
              kept_before: Sequence[str] = ()) -> list[bool]:
    """For each text (in order of preference), whether it stays: False when it is within
    ``threshold`` Jaccard of a text kept before it, or of any of ``kept_before`` (texts
    already in the set, e.g. the failures when collapsing the controls)."""
    everything = [*kept_before, *texts]
    if not texts:
        return []
    matrix = CountVectorizer(analyzer=shingles, binary=True).fit_transform(everything)
    matrix = matrix.tocsr().astype(np.int32)
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    inter = (matrix @ matrix.T).tocsr()
    kept = [True] * len(kept_before) + [False] * len(texts)
    offset = len(kept_before)
    for i in range(offset, len(everything)):
        row = inter.getrow(i)
        duplicate = False
        for j, shared in zip(row.indices, row.data, strict=True):
            if j == i or not kept[j] or (j >= i and j >= offset):
                continue
            union = sizes[i] + sizes[j] - shared
            if union and shared / union >= threshold:
                duplicate = True
                break
        kept[i] = not duplicate
    return kept[offset:]


def jaccard(a: str, b: str) -> float:
    """The measure :func:`keep_mask` uses, for one pair (tests, reports)."""
    left, right = set(shingles(a)), set(shingles(b))
    return len(left & right) / len(left | right) if left | right else 1.0
