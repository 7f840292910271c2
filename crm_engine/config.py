"""Typed pipeline configuration: one TOML file validated by pydantic, one section per package."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from crm_engine.config_models import (
    ChurnConfig,
    ChurnLightGBMConfig,
    ContagionConfig,
    LifecycleRules,
    LightGBMConfig,
    LoyaltyConfig,
    LoyaltyLightGBMConfig,
    RetentionConfig,
    Section,
    SegmentationConfig,
    ValuationConfig,
)

# the model packages' sections live in config_models; every section is importable from here
__all__ = [
    "ChurnConfig",
    "ChurnLightGBMConfig",
    "ConfigError",
    "ContagionConfig",
    "DataConfig",
    "EngineConfig",
    "FeaturesConfig",
    "LifecycleRules",
    "LightGBMConfig",
    "LoyaltyConfig",
    "LoyaltyLightGBMConfig",
    "MlflowConfig",
    "MonitoringConfig",
    "OutputConfig",
    "PipelineConfig",
    "RetentionConfig",
    "SegmentationConfig",
    "SparkConfig",
    "ValuationConfig",
    "age_band_labels",
    "config_to_toml",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key path."""


class DataConfig(Section):
    """Where the input tables are and which date the run describes."""

    dir: Path = Field(Path("demo/data"), description="directory holding the input tables")
    as_of: dt.date | None = Field(
        None,
        description="first day not observed; default: first day of the month after the "
        "last transaction",
    )
    max_text_bytes: Annotated[int, Field(gt=0)] = Field(
        256, description="longest text value accepted in an input table (category names)"
    )
    timezone: str = Field(
        "UTC",
        description="wall clock of the timestamps: time-zone aware ones (and CSV offsets) are "
        "converted to it, naive ones are taken as on it (an IANA name, e.g. Europe/Berlin)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
            raise ValueError(msg) from None
        return value


class OutputConfig(Section):
    """Where results are written."""

    dir: Path = Field(
        Path("demo/output"),
        description="output directory: runs/<run_id>/, current -> the committed run, "
        "scores.parquet and the other files under stable names",
    )
    keep_runs: Annotated[int, Field(ge=1)] = Field(
        3, description="committed runs kept in runs/ (the current one always stays)"
    )
    currency: str | None = Field(
        None,
        description="currency of the money columns, shown in the report's titles (e.g. EUR); "
        "none: 'units'",
    )
    save_first_rows: Annotated[int, Field(ge=0)] = Field(
        100,
        description="customers in save_first.csv: highest value at risk first, dormant and "
        "lost customers left out",
    )
    single_file: bool = Field(
        True,
        description="scores.parquet and profiles.parquet, one file each (what most CRM imports "
        "read); false: scores/ and profiles/, directories of Parquet parts of at most part_rows "
        "rows, each part with the contract's metadata (for tables too big for one file)",
    )
    part_rows: Annotated[int, Field(gt=0)] = Field(
        1_000_000, description="rows per Parquet part when single_file is false"
    )


class MlflowConfig(Section):
    """Experiment tracking."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default MLFLOW_TRACKING_URI or "
        "sqlite:///<output>/mlflow.db",
    )
    experiment: str = "crm-engine"
    register_models: bool = True


def age_band_labels(cut_points: Sequence[int]) -> list[str]:
    """Band names for upper-exclusive cut points: ``[25, 35]`` -> ``<25, 25-34, 35+``.

    The names of ``features.age_bands``: the profile labels ages with them, the report orders
    its age axis by them.
    """
    cuts = list(cut_points)
    if not cuts:
        return ["all"]
    labels = [f"<{cuts[0]}"]
    labels += [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(cuts)]
    labels.append(f"{cuts[-1]}+")
    return labels


class FeaturesConfig(Section):
    """Point-in-time customer profiles."""

    # list defaults in Field(): with the base imported, ruff (RUF012) no longer sees a pydantic
    # model here; pydantic copies the default per instance either way
    spend_windows_days: list[Annotated[int, Field(gt=0)]] = Field([30, 90, 365])
    service_windows_days: list[Annotated[int, Field(gt=0)]] = Field([90, 365])
    network_months: Annotated[int, Field(gt=0, le=24)] = 3
    contagion_days: Annotated[int, Field(gt=0)] = 90
    ahead_days: Annotated[int, Field(gt=0)] = Field(
        90,
        description="days after the cut that first_year_share_<d>d describes; default: "
        "churn.horizon_days",
    )
    age_bands: list[Annotated[int, Field(ge=0, le=120)]] = Field(
        [25, 35, 50, 65], description="upper-exclusive cut points of the age bands"
    )
    pagerank_iterations: Annotated[int, Field(gt=0, le=200)] = 20
    min_category_customers: Annotated[int, Field(ge=1)] = Field(
        10,
        description="category values held by fewer customers are pooled into 'other' before "
        "any model sees them (no model artifact names a value that identifies a few people)",
    )

    @field_validator("age_bands", "spend_windows_days", "service_windows_days")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError(f"must be strictly increasing, got {v}")
        return v


class MonitoringConfig(Section):
    """Month over month (``[monitoring]``): drift between the previous committed run and this
    one, and how many earlier runs the backtest checks.

    The population stability index (PSI) of every model feature and score column is computed on
    the previous run's bins; at ``psi_warn`` a column is worth a look, at ``psi_alert`` it moved.
    """

    psi_warn: Annotated[float, Field(gt=0)] = Field(
        0.1, description="PSI from which a column's drift is a warning"
    )
    psi_alert: Annotated[float, Field(gt=0)] = Field(
        0.25, description="PSI from which a column's drift is an alert"
    )
    min_region_customers: Annotated[int, Field(ge=1)] = Field(
        100,
        description="customers a region needs in both runs for its own PSI (the alerts that "
        "name a region)",
    )
    backtest_max_runs: Annotated[int, Field(ge=1)] = Field(
        12,
        description="earlier committed runs the backtest checks at most, latest first (skipped "
        "runs do not count; output.keep_runs bounds the chain too)",
    )

    @model_validator(mode="after")
    def _check(self) -> MonitoringConfig:
        if self.psi_alert < self.psi_warn:
            raise ValueError(f"psi_alert={self.psi_alert} should be >= psi_warn={self.psi_warn}")
        return self


class SparkConfig(Section):
    """The Spark session of the Spark backend (``[engine.spark]``)."""

    master: str = Field(
        "local[*,4]",
        description="Spark master URL: local[*,4] (this machine's cores, a failed task tried "
        "up to 4 times, as on a cluster; plain local[*] never retries), yarn, "
        "spark://host:7077, k8s://...; not used when a session is passed in "
        "(pipelines.spark.session.use_session)",
    )
    app_name: str = Field("crm-engine", description="Spark application name")
    buckets: Annotated[int, Field(gt=0, le=100_000)] = Field(
        8,
        description="hash buckets of customer_id: each bucket's profile is one Polars task "
        "(more buckets, smaller tasks; about rows / 1M is a good start)",
    )
    score_on_executors: bool = Field(
        True,
        description="assign everyone's segment, value everyone and run the churn and "
        "loyalty predictions on the executors (ProfileCache.map), only the results coming "
        "back; off: the driver maps the same functions over the same files",
    )
    conf: dict[str, str] = Field(
        {},
        description='extra Spark settings, e.g. "spark.executor.memory" = "8g" (quote the '
        "dotted keys)",
    )


class EngineConfig(Section):
    """Where the profiles are computed and on how many threads (``[engine]``)."""

    backend: Literal["local", "spark"] = Field(
        "local",
        description="local: Polars streaming on this machine; spark: Apache Spark "
        "(needs crm-engine[spark] and Java 17+), the other stages unchanged",
    )
    threads: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description="threads LightGBM, scikit-learn and BLAS may use (never more than the "
        "cores this process may use, the default); OpenMP waits passively",
    )
    buckets: Annotated[int, Field(gt=0, le=10_000)] | None = Field(
        None,
        description="local backend: hash buckets of customer_id the keyed tables are split in "
        "(scratch Parquet in the run's staging directory), each profile built bucket by "
        "bucket; default: one per bucket_customers customers (1: no split)",
    )
    bucket_customers: Annotated[int, Field(gt=0)] = Field(
        250_000,
        description="customers per bucket when buckets is not set: the churn training cuts "
        "(churn.max_training_customers hashed customers) then read one bucket each (at 1M "
        "customers the seven sampled cuts took 50 s of CPU unsplit and 26 s from 4 buckets, "
        "the split 12 s)",
    )
    spark: SparkConfig = SparkConfig()


class PipelineConfig(Section):
    """The whole run, one section per package."""

    data: DataConfig = DataConfig()
    output: OutputConfig = OutputConfig()
    mlflow: MlflowConfig = MlflowConfig()
    features: FeaturesConfig = FeaturesConfig()
    segmentation: SegmentationConfig = SegmentationConfig()
    valuation: ValuationConfig = ValuationConfig()
    churn: ChurnConfig = ChurnConfig()
    retention: RetentionConfig = RetentionConfig()
    contagion: ContagionConfig = ContagionConfig()
    loyalty: LoyaltyConfig = LoyaltyConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    engine: EngineConfig = EngineConfig()

    @model_validator(mode="after")
    def _ahead_is_the_churn_horizon(self) -> PipelineConfig:
        # the features that describe the window ahead describe the churn label's window
        if "ahead_days" not in self.features.model_fields_set:
            self.features = self.features.model_copy(update={"ahead_days": self.churn.horizon_days})
        return self


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            allowed = sorted(_allowed_keys(parent))
            lines.append(f"  {path}: unknown key (allowed: {', '.join(allowed)})")
        else:
            lines.append(f"  {path}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def _allowed_keys(path: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = PipelineConfig
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        if not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {p} is not a section")
    node[parts[-1]] = value


def load_config(
    path: Path | None = None, overrides: dict[str, Any] | None = None
) -> PipelineConfig:
    """Read a TOML file (or the defaults), apply dotted-key overrides and validate.

    Parameters
    ----------
    path
        A ``pipeline.toml``; None gives the embedded defaults. A relative ``data.dir`` in it is
        resolved against the file's folder (CLI overrides stay relative to the working
        directory).
    overrides
        ``{"data.dir": "x", "churn.horizon_days": 60}``: CLI flags win over the file.

    Raises
    ------
    ConfigError
        With the key path and the allowed keys or values.
    """
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            tree = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {path}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
        # a relative data.dir in a file means "beside this file", wherever the job is started
        data = tree.get("data")
        if isinstance(data, dict) and isinstance(data.get("dir"), str):
            if not Path(data["dir"]).is_absolute():
                data["dir"] = str((Path(path).resolve().parent / data["dir"]).resolve())
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_path(tree, key, value)
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def config_to_toml(cfg: PipelineConfig) -> str:
    """Render a config as TOML text (the resolved view `crm-engine config --show` prints).

    ``data.dir`` is written absolute (as a run resolves it), so the text means the same
    config wherever the file is put.
    """
    data = cfg.model_dump(mode="json")
    data["data"]["dir"] = str(Path(cfg.data.dir).resolve())
    out: list[str] = []

    def key(k: str) -> str:
        # a dotted key ("spark.executor.memory" of engine.spark.conf) is quoted: bare, TOML
        # would read it as nested tables
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else fmt(k)

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{key(k)} = {fmt(x)}" for k, x in v.items()) + " }"
        return repr(v)

    def section(name: str, body: dict[str, Any]) -> None:
        out.append(f"[{name}]")
        subs = []
        for k, v in body.items():
            if v is None:
                out.append(f"# {k} = (unset)")
            elif isinstance(v, dict):
                subs.append((f"{name}.{k}", v))
            else:
                out.append(f"{key(k)} = {fmt(v)}")
        out.append("")
        for n, b in subs:
            section(n, b)

    for name, body in data.items():
        section(name, body)
    return "\n".join(out)
