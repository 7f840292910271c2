"""Point-in-time customer profiles and labels as Polars LazyFrames."""

from features.btyd import add_btyd, btyd_summary
from features.influence import add_influence, pagerank, undirected_edges
from features.labels import LOYALTY_CLASSES, build_labels, churn_label, labels_columns
from features.network import NETWORK_KPIS, add_network
from features.profile import (
    PROFILE_CONTRACT,
    PROFILE_GROUPS,
    REQUIRED_TABLES,
    ProfileSchemaError,
    build_profile,
    profile_groups,
    profile_schema,
)
from features.service import COMPLAINT_TOPICS, add_service
from features.spend import SPEND_CATEGORIES, add_spend
from features.surveys import add_surveys
from features.usage import add_usage
from features.who import age_band_labels, population, who_features
from features.window import default_as_of, observed, to_date

__all__ = [
    "COMPLAINT_TOPICS",
    "LOYALTY_CLASSES",
    "NETWORK_KPIS",
    "PROFILE_CONTRACT",
    "PROFILE_GROUPS",
    "REQUIRED_TABLES",
    "SPEND_CATEGORIES",
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
    "default_as_of",
    "labels_columns",
    "observed",
    "pagerank",
    "population",
    "profile_groups",
    "profile_schema",
    "to_date",
    "undirected_edges",
    "who_features",
]
