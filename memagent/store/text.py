"""Full-text analysis and an incremental BM25 index, shared by the in-memory backend and the
per-user episode cache.

The analysis follows LanceDB's default: ASCII folding, lower case, words of
letters and digits, Snowball (Porter 2) stems from nltk, English stop words
dropped after stemming. Scores are Okapi BM25 (``k1`` 1.2, ``b`` 0.75) over
the documents of one index, which holds one user's texts only.

>>> index = InvertedIndex()
>>> index.add(["I went running by the river", "We cooked pasta"])
>>> [(n, round(s, 3)) for n, s in index.search("runs", 5)]
[(0, 0.641)]
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from nltk.stem.snowball import SnowballStemmer

# LanceDB's English stop words (those of the Snowball project, as nltk lists them). LanceDB drops
# a word when its *stem* is in the list, so "does" (stem "doe") stays and "did" goes: so do we.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself
it its itself they them their theirs themselves what which who whom this that these those am is are was were be
been being have has had having do does did doing a an the and but if or because as until while of at by for with
about against between into through during before after above below to from up down in out on off over under
again further then once here there when where why how all any both each few more most other some such no nor not
only own same so than too very s t can will just don should now d ll m o re ve y ain aren couldn didn doesn hadn
hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn""".split())
_WORD = re.compile(r"[^\W_]+")
K1, B = 1.2, 0.75
snowball_stem = _stem = lru_cache(maxsize=200_000)(SnowballStemmer("english").stem)


def tokens(text: str) -> list[str]:
    """Full-text terms of a text: folded, lower-cased, stemmed words, stop words out.

    >>> tokens("What does the Dog do? Running in Zürich!")
    ['doe', 'dog', 'run', 'zurich']
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    stems = (_stem(w) for w in _WORD.findall(folded) if len(w) <= 40)
    return [t for t in stems if t not in STOP_WORDS]


def forget_stems() -> None:
    """Empty the stem cache (it holds words of every text analysed in this process)."""
    _stem.cache_clear()


class InvertedIndex:
    """Postings of the documents added so far (numbered from 0, in the order added); grows in place."""

    def __init__(self) -> None:
        self.postings: dict[str, tuple[list[int], list[int]]] = {}
        self.lengths: list[int] = []
        self._total = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, texts: Sequence[str]) -> None:
        for text in texts:
            doc = len(self.lengths)
            counts: dict[str, int] = {}
            for term in tokens(text or ""):
                counts[term] = counts.get(term, 0) + 1
            for term, tf in counts.items():
                docs, tfs = self.postings.setdefault(term, ([], []))
                docs.append(doc)
                tfs.append(tf)
            length = sum(counts.values())
            self.lengths.append(length)
            self._total += length

    def search(self, query: str, k: int, allowed: np.ndarray | None = None,
               limit: int | None = None) -> list[tuple[int, float]]:
        """Documents (numbers) and BM25 scores for ``query``, best first; ``allowed`` masks documents,
        ``limit`` ignores documents numbered from it on (added after the caller's view)."""
        n = len(self.lengths) if limit is None else min(limit, len(self.lengths))
        if n == 0 or k < 1:
            return []
        lengths = np.asarray(self.lengths[:n], dtype=np.float64)
        norm = K1 * (1 - B + B * lengths / (self._total / len(self.lengths) or 1.0))
        scores = np.zeros(n)
        for term in dict.fromkeys(tokens(query)):
            found = self.postings.get(term)
            if not found:
                continue
            docs = np.asarray(found[0], dtype=np.int64)
            tfs = np.asarray(found[1], dtype=np.float64)
            keep = docs < n
            docs, tfs = docs[keep], tfs[keep]
            if not len(docs):
                continue
            idf = math.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            scores[docs] += idf * tfs * (K1 + 1) / (tfs + norm[docs])
        if allowed is not None:
            scores[~allowed[:n]] = 0.0
        hits = np.flatnonzero(scores > 0)
        if not len(hits):
            return []
        top = hits[np.argsort(-scores[hits], kind="stable")[:k]]
        return [(int(d), float(scores[d])) for d in top]
