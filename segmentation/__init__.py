"""Customer segmentation: spend levels, age bands and behavioural clusters with stable ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_engine.feature_labels import plain_label
from crm_engine.lazy import lazy_names
from segmentation.align import (
    Alignment,
    align_segment_ids,
    migration_matrix,
    migration_table,
    stability,
)
from segmentation.bands import (
    AGE_BANDS,
    SPEND_LEVELS,
    add_bands,
    profile_age_band,
    spend_cut_points,
    spend_level_expr,
)
from segmentation.cluster import MissingFeatureError, Segmenter, resolve_features
from segmentation.naming import name_segments
from segmentation.preprocess import DEFAULT_FEATURES, build_preprocessor
from segmentation.profiles import PROFILE_SCHEMA, segment_profiles
from segmentation.stage import (
    ASSIGNMENT_SCHEMA,
    SegmentationResult,
    SegmentationWarning,
    build_segmenter,
    segment_customers,
)

if TYPE_CHECKING:
    from segmentation.pyfunc import SegmenterPyfunc, log_segmentation_model

__getattr__ = lazy_names(
    "segmentation", "segmentation.pyfunc", ("SegmenterPyfunc", "log_segmentation_model")
)


__all__ = [
    "AGE_BANDS",
    "ASSIGNMENT_SCHEMA",
    "DEFAULT_FEATURES",
    "PROFILE_SCHEMA",
    "SPEND_LEVELS",
    "Alignment",
    "MissingFeatureError",
    "SegmentationResult",
    "SegmentationWarning",
    "Segmenter",
    "SegmenterPyfunc",
    "add_bands",
    "align_segment_ids",
    "build_preprocessor",
    "build_segmenter",
    "log_segmentation_model",
    "migration_matrix",
    "migration_table",
    "name_segments",
    "plain_label",
    "profile_age_band",
    "resolve_features",
    "segment_customers",
    "segment_profiles",
    "spend_cut_points",
    "spend_level_expr",
    "stability",
]
