"""Key-value retrieval: a sequence task whose correct attention alignment is known.

Each sample stores n (key, value) pairs, keys distinct, and asks for the value of every key
again in shuffled order. Answering query i needs exactly one item, the pair whose key equals
the query, so the correct alignment is a permutation matrix and a learned attention map can be
checked against it query by query.
"""

from dataclasses import dataclass

import numpy as np

from seqattn.errors import ConfigError


@dataclass(frozen=True)
class RetrievalTask:
    keys: np.ndarray  # (N, n) int32, distinct within a sample
    values: np.ndarray  # (N, n) int32
    queries: np.ndarray  # (N, n) int32, a permutation of the sample's keys
    targets: np.ndarray  # (N, n) int32, values[alignment]
    alignment: np.ndarray  # (N, n) int32, index of the item that answers query i

    def inputs(self) -> dict:
        return {"keys": self.keys, "values": self.values, "queries": self.queries}


def make_retrieval_task(n_samples: int, n_pairs: int, n_keys: int, n_values: int, seed: int) -> RetrievalTask:
    if n_pairs > n_keys:
        raise ConfigError(f"n_pairs={n_pairs} needs at least as many distinct keys; got n_keys={n_keys}")
    if min(n_samples, n_pairs, n_values) < 1:
        raise ConfigError(f"n_samples, n_pairs and n_values must be positive; got {n_samples}, {n_pairs}, {n_values}")
    rng = np.random.default_rng(seed)
    keys = np.argsort(rng.random((n_samples, n_keys)), axis=1)[:, :n_pairs]  # distinct keys per row
    values = rng.integers(0, n_values, size=(n_samples, n_pairs))
    alignment = np.argsort(rng.random((n_samples, n_pairs)), axis=1)  # query i asks item alignment[i]
    queries = np.take_along_axis(keys, alignment, axis=1)
    targets = np.take_along_axis(values, alignment, axis=1)
    as_int = lambda a: a.astype(np.int32)  # noqa: E731
    return RetrievalTask(as_int(keys), as_int(values), as_int(queries), as_int(targets), as_int(alignment))
