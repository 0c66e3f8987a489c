from seqattn.report import markdown_table, mean_std


def test_mean_std_is_the_sample_std_over_seeds_for_scalars_and_curves():
    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0}  # sqrt(((1-2)^2 + (3-2)^2) / 2)
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0}
    # Curves (seeds, steps): the same statistics, step by step.
    assert mean_std([[1.0, 10.0], [3.0, 10.0]]) == {"mean": [2.0, 10.0], "std": [2**0.5, 0.0]}
    assert mean_std([[1.0, 4.0]]) == {"mean": [1.0, 4.0], "std": [0.0, 0.0]}


def test_markdown_table_rounds_floats_to_four_significant_digits():
    table = markdown_table(["model", "mse"], [["tap", 0.123456], ["htap", 12]])
    assert table.splitlines() == ["| model | mse |", "|---|---|", "| tap | 0.1235 |", "| htap | 12 |"]
