"""The Spark session's defaults for one machine."""

from __future__ import annotations

import os

from pipelines.spark.session import local_shuffle_partitions


def test_local_masters_get_a_few_shuffle_partitions_per_core() -> None:
    assert local_shuffle_partitions("local[2]") == 8
    assert local_shuffle_partitions("local") == 4
    assert local_shuffle_partitions("local[1]") == 4
    assert local_shuffle_partitions("local[3,2]") == 12  # with task retries
    assert local_shuffle_partitions("local[*]") == 4 * (os.cpu_count() or 1)
