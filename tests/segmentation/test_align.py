"""Stable ids across runs and the migration matrix."""

from __future__ import annotations

import numpy as np
import polars as pl

from segmentation import Segmenter, align_segment_ids, migration_matrix, migration_table


def test_relabelled_clusters_get_their_old_ids(blobs: pl.DataFrame) -> None:
    X = blobs.to_pandas()
    old = Segmenter(k=5, random_state=0).fit(X)
    old.set_segment_ids([10, 11, 12, 13, 14])
    new = Segmenter(k=5, random_state=99).fit(X)
    alignment = align_segment_ids(old, new, X, labels=new.labels_)
    new.set_segment_ids(alignment.segment_ids, alignment.max_segment_id)
    same = (old.predict_segment_id(X) == new.predict_segment_id(X)).mean()
    assert same >= 0.99
    assert alignment.n_fresh == 0
    assert sorted(alignment.segment_ids.tolist()) == [10, 11, 12, 13, 14]


def test_extra_clusters_get_fresh_ids_above_the_lineage(blobs: pl.DataFrame) -> None:
    X = blobs.to_pandas()
    old = Segmenter(k=4, random_state=0).fit(X)
    old.set_segment_ids([0, 1, 2, 7], max_segment_id=8)  # ids 3..6, 8 retired earlier
    new = Segmenter(k=6, random_state=0).fit(X)
    alignment = align_segment_ids(old, new, X)
    ids = alignment.segment_ids.tolist()
    assert alignment.n_fresh == 2
    assert sorted(i for i in ids if i > 8) == [9, 10]
    assert {0, 1, 2, 7} <= set(ids)
    assert alignment.max_segment_id == 10


def test_migration_matrix_counts_every_customer_once() -> None:
    prev = np.array([0, 0, 1, 1, 1, 2])
    new = np.array([0, 3, 1, 1, 0, 2])
    names = {0: "a", 1: "b", 2: "c", 3: "d"}
    mig = migration_matrix(prev, np.vectorize(names.get)(prev), new, np.vectorize(names.get)(new))
    assert mig["customers"].sum() == 6
    assert mig.schema["customers"] == pl.Int64
    row = mig.filter((pl.col("previous_segment_id") == 1) & (pl.col("segment_id") == 0))
    assert row["customers"].item() == 1
    assert row.select("previous_segment_name", "segment_name").row(0) == ("b", "a")
    assert mig.height == 5  # the five (old, new) pairs that occur
    assert abs(row["share_of_previous"].item() - 1 / 3) < 1e-12
    wide = migration_table(mig)
    assert wide.filter(pl.col("previous_segment_id") == 0).select("0", "3").row(0) == (1, 1)
