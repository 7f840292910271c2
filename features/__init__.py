"""Point-in-time customer profiles and labels as Polars LazyFrames."""

from features.btyd import add_btyd, btyd_summary, rfm_facts
from features.influence import add_influence, pagerank, undirected_edges
from features.labels import (
    LOYALTY_CLASSES,
    build_labels,
    churn_label,
    is_label,
    labels_columns,
    realised_outcomes,
    revenue_between,
)
from features.network import NETWORK_KPIS, add_network
from features.point_in_time import PointInTime
from features.privacy import OTHER, frequent_values, pool_rare
from features.profile import (
    PROFILE_CONTRACT,
    PROFILE_GROUPS,
    REQUIRED_TABLES,
    ColumnRole,
    ProfileAt,
    ProfileSchemaError,
    build_profile,
    column_role,
    model_features,
    profile_groups,
    profile_roles,
    profile_schema,
)
from features.sample import CustomerSample, restrict
from features.service import COMPLAINT_TOPICS, add_service
from features.spend import SPEND_CATEGORIES, add_spend
from features.surveys import add_surveys
from features.usage import add_usage
from features.who import (
    DESCRIPTIVE_COLUMNS,
    age_band_labels,
    population,
    population_counts,
    who_features,
)
from features.window import DataStart, data_start, default_as_of, observed, to_date

__all__ = [
    "COMPLAINT_TOPICS",
    "DESCRIPTIVE_COLUMNS",
    "LOYALTY_CLASSES",
    "NETWORK_KPIS",
    "OTHER",
    "PROFILE_CONTRACT",
    "PROFILE_GROUPS",
    "REQUIRED_TABLES",
    "SPEND_CATEGORIES",
    "ColumnRole",
    "CustomerSample",
    "DataStart",
    "PointInTime",
    "ProfileAt",
    "ProfileSchemaError",
    "add_btyd",
    "add_influence",
    "add_network",
    "add_service",
    "add_spend",
    "add_surveys",
    "add_usage",
    "age_band_labels",
    "btyd_summary",
    "build_labels",
    "build_profile",
    "churn_label",
    "column_role",
    "data_start",
    "default_as_of",
    "frequent_values",
    "is_label",
    "labels_columns",
    "model_features",
    "observed",
    "pagerank",
    "pool_rare",
    "population",
    "population_counts",
    "profile_groups",
    "profile_roles",
    "profile_schema",
    "realised_outcomes",
    "restrict",
    "revenue_between",
    "rfm_facts",
    "to_date",
    "undirected_edges",
    "who_features",
]
