import numpy as np
import pytest

from seqattn.data.retrieval import make_retrieval_task
from seqattn.errors import ConfigError


def test_alignment_points_at_the_item_holding_the_asked_key():
    task = make_retrieval_task(200, n_pairs=6, n_keys=10, n_values=5, seed=3)
    rows = np.arange(200)[:, None]
    np.testing.assert_array_equal(task.keys[rows, task.alignment], task.queries)
    np.testing.assert_array_equal(task.values[rows, task.alignment], task.targets)


def test_keys_are_distinct_and_queries_ask_every_key_once():
    task = make_retrieval_task(100, n_pairs=8, n_keys=8, n_values=4, seed=0)
    assert all(len(set(row)) == 8 for row in task.keys)
    np.testing.assert_array_equal(np.sort(task.queries, axis=1), np.sort(task.keys, axis=1))


def test_same_seed_same_task_other_seed_other_task():
    a, b, c = (make_retrieval_task(50, 4, 8, 8, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.queries, b.queries)
    assert not np.array_equal(a.queries, c.queries)


@pytest.mark.parametrize("kwargs, word", [
    ({"n_pairs": 9, "n_keys": 8}, "n_pairs=9"),
    ({"n_pairs": 0, "n_keys": 8}, "positive"),
])
def test_bad_sizes_name_the_argument(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        make_retrieval_task(10, n_values=4, seed=0, **kwargs)
