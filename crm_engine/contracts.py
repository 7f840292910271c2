"""Data contracts: the schema of every input table (`crm.inputs/v1`) and of the scores output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

INPUTS_CONTRACT = "crm.inputs/v1"
INPUTS_CONTRACT_VERSION = "1.1"
"""Minor version of :data:`INPUTS_CONTRACT`: a new optional column adds to it. 1.1 added
``customers.contract_end_date``."""
SCORES_CONTRACT = "crm.scores/v1"
SCORES_CONTRACT_VERSION = "1.3"
"""Minor version of :data:`SCORES_CONTRACT`: a new column adds to it, a renamed or removed one
changes the contract id. 1.1 added ``churn_reasons``, 1.2 ``retention_profit`` and
``value_model``, 1.3 ``network_value`` and ``value_at_risk_network``."""

DATETIME = pl.Datetime("us")


@dataclass(frozen=True)
class Range:
    """The physical range of a numeric column, bounds included (None: unbounded that side).

    Parameters
    ----------
    low, high
        The smallest and largest value that can be true.
    policy
        None: a value outside is an error. Otherwise the value is possible but special (a
        refund is a negative amount): rows outside are counted and warned with this text.
    """

    low: float | None = None
    high: float | None = None
    policy: str | None = None

    def label(self) -> str:
        """``0-10``, ``>= 0`` or ``<= 1``, as messages and ``validate --contract`` show it."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g}-{self.high:g}"
        if self.low is not None:
            return f">= {self.low:g}"
        return f"<= {self.high:g}"

    def outside(self, value: pl.Expr) -> pl.Expr:
        """True where ``value`` lies outside the range (null stays null)."""
        below = value < self.low if self.low is not None else pl.lit(False)
        above = value > self.high if self.high is not None else pl.lit(False)
        return below | above

    def message(self, column: str) -> str:
        """What a row outside the range is called in a validation problem."""
        if self.policy is not None:
            return self.policy
        if self.low is not None and self.high is not None:
            return f"{column} outside {self.label()}"
        if self.low is not None:
            return f"{column} below {self.low:g}"
        return f"{column} above {self.high:g}"


@dataclass(frozen=True)
class TableContract:
    """One input table: its columns, which of them may be null, and how it is dated.

    Parameters
    ----------
    name
        Table name; the file is found as ``<name>.parquet``, ``<name>/`` or ``<name>.csv``.
    schema
        Column name -> Polars dtype. ``customer_id``-like key columns are declared Int64 here;
        the reader switches them to String when the customers table uses string ids.
    required
        Whether a run can go on without this table.
    nullable
        Columns that may hold nulls; every other column must be non-null.
    optional
        Columns a file may leave out (a minor version added them); the reader adds one that
        is absent as all null, so every stage sees the whole schema. Optional columns are
        nullable.
    keys
        Customer key columns (``customer_id``, or ``caller_id``/``callee_id`` for calls).
    time_column
        The column that dates a row for point-in-time rules (None: the table is not dated).
    monthly
        True when ``time_column`` is the first day of a month that the row summarises: such a
        row is only observed at ``as_of`` once its whole month lies before ``as_of``.
    ranges
        Column -> its physical :class:`Range`, checked by validation and printed by
        ``crm-engine validate --contract``.
    self_pairs
        Pairs of key columns that may name one customer twice in a row (a call to one's own
        voicemail) -> the policy: such rows are counted and warned with this text (the
        features leave them out).
    may_be_future
        Date columns that may lie after today (a churn date known in advance); every other
        date or timestamp lies between 1900 and today.
    """

    name: str
    schema: dict[str, pl.DataType]
    required: bool = False
    nullable: frozenset[str] = field(default_factory=frozenset)
    optional: frozenset[str] = field(default_factory=frozenset)
    keys: tuple[str, ...] = ("customer_id",)
    time_column: str | None = None
    monthly: bool = False
    ranges: dict[str, Range] = field(default_factory=dict)
    self_pairs: dict[tuple[str, str], str] = field(default_factory=dict)
    may_be_future: frozenset[str] = field(default_factory=frozenset)

    @property
    def columns(self) -> list[str]:
        return list(self.schema)

    def polars_schema(self, id_dtype: pl.DataType = pl.Int64) -> pl.Schema:
        """The schema with key columns in the run's customer id type."""
        return pl.Schema({c: (id_dtype if c in self.keys else t) for c, t in self.schema.items()})


CUSTOMERS = TableContract(
    name="customers",
    schema={
        "customer_id": pl.Int64(),
        "signup_date": pl.Date(),
        "birth_date": pl.Date(),
        "gender": pl.String(),
        "occupation": pl.String(),
        "region": pl.String(),
        "area_type": pl.String(),
        "plan_type": pl.String(),
        "churn_date": pl.Date(),
        "contract_end_date": pl.Date(),
    },
    required=True,
    nullable=frozenset(
        {"birth_date", "gender", "occupation", "area_type", "churn_date", "contract_end_date"}
    ),
    optional=frozenset({"contract_end_date"}),
    time_column="signup_date",
    may_be_future=frozenset({"churn_date", "contract_end_date"}),
)

TRANSACTIONS = TableContract(
    name="transactions",
    schema={
        "customer_id": pl.Int64(),
        "ts": DATETIME,
        "amount": pl.Float64(),
        "category": pl.String(),
        "channel": pl.String(),
    },
    required=True,
    nullable=frozenset({"category", "channel"}),
    time_column="ts",
    ranges={"amount": Range(low=0, policy="refunds (negative amounts)")},
)

USAGE = TableContract(
    name="usage",
    schema={
        "customer_id": pl.Int64(),
        "month": pl.Date(),
        "data_mb": pl.Float64(),
        "voice_min": pl.Float64(),
        "sms": pl.Float64(),
    },
    time_column="month",
    monthly=True,
    ranges={c: Range(low=0) for c in ("data_mb", "voice_min", "sms")},
)

NETWORK = TableContract(
    name="network",
    schema={
        "customer_id": pl.Int64(),
        "month": pl.Date(),
        "dropped_call_rate": pl.Float64(),
        "call_setup_success_rate": pl.Float64(),
        "avg_download_mbps": pl.Float64(),
        "latency_ms": pl.Float64(),
        "packet_loss_pct": pl.Float64(),
        "coverage_5g_share": pl.Float64(),
    },
    nullable=frozenset(
        {
            "dropped_call_rate",
            "call_setup_success_rate",
            "avg_download_mbps",
            "latency_ms",
            "packet_loss_pct",
            "coverage_5g_share",
        }
    ),
    time_column="month",
    monthly=True,
    ranges={
        "dropped_call_rate": Range(0, 1),
        "call_setup_success_rate": Range(0, 1),
        "avg_download_mbps": Range(low=0),
        "latency_ms": Range(low=0),
        "packet_loss_pct": Range(0, 100),
        "coverage_5g_share": Range(0, 1),
    },
)

INTERACTIONS = TableContract(
    name="interactions",
    schema={
        "customer_id": pl.Int64(),
        "opened_at": DATETIME,
        "closed_at": DATETIME,
        "channel": pl.String(),
        "kind": pl.String(),
        "topic": pl.String(),
        "satisfaction": pl.Int64(),
    },
    nullable=frozenset({"closed_at", "channel", "topic", "satisfaction"}),
    time_column="opened_at",
    ranges={"satisfaction": Range(1, 5)},
)

SURVEYS = TableContract(
    name="surveys",
    schema={
        "customer_id": pl.Int64(),
        "answered_at": DATETIME,
        "nps": pl.Int64(),
        "csat": pl.Int64(),
    },
    nullable=frozenset({"csat"}),
    time_column="answered_at",
    ranges={"nps": Range(0, 10), "csat": Range(1, 5)},
)

CALLS = TableContract(
    name="calls",
    schema={
        "caller_id": pl.Int64(),
        "callee_id": pl.Int64(),
        "month": pl.Date(),
        "n_calls": pl.Int64(),
        "minutes": pl.Float64(),
    },
    keys=("caller_id", "callee_id"),
    time_column="month",
    monthly=True,
    ranges={"n_calls": Range(low=0), "minutes": Range(low=0)},
    self_pairs={
        ("caller_id", "callee_id"): "self-calls (callee_id equals caller_id): left out of the "
        "call graph"
    },
)

INPUT_TABLES: dict[str, TableContract] = {
    t.name: t for t in (CUSTOMERS, TRANSACTIONS, USAGE, NETWORK, INTERACTIONS, SURVEYS, CALLS)
}

# Allowed values of the closed categorical columns (open ones such as category, channel or
# topic accept any string).
ALLOWED_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("customers", "area_type"): frozenset({"urban", "rural"}),
    ("customers", "plan_type"): frozenset({"prepaid", "postpaid"}),
    ("interactions", "kind"): frozenset({"complaint", "inquiry", "request"}),
}


def inputs_contract_rows() -> list[tuple[str, str, str, str, str]]:
    """The input contract, one row per column: table, column, type, null?, and what the
    validation holds it to (its range, closed set of values, or a key rule).

    ``crm-engine validate --contract`` prints these rows; validation reads the same
    declarations (:attr:`TableContract.ranges`, :data:`ALLOWED_VALUES`).
    """
    rows = []
    for t in INPUT_TABLES.values():
        for col, dtype in t.schema.items():
            rules = []
            if col in t.keys:
                rules.append("customer key" + (", unique" if t.name == "customers" else ""))
            rules += [
                f"equal to {b}: warned as {policy}"
                for (a, b), policy in t.self_pairs.items()
                if a == col
            ]
            rng = t.ranges.get(col)
            if rng is not None:
                warned = f" (outside: warned as {rng.policy})" if rng.policy else ""
                rules.append(rng.label() + warned)
            if dtype.is_temporal():
                rules.append("from 1900" if col in t.may_be_future else "1900 .. today")
            allowed = ALLOWED_VALUES.get((t.name, col))
            if allowed:
                rules.append(" / ".join(sorted(allowed)))
            null = "yes" if col in t.nullable else "no"
            rows.append((t.name, col, dtype_label(dtype), null, "; ".join(rules)))
    return rows


@dataclass(frozen=True)
class ScoreColumn:
    """One column of the scores contract.

    Parameters
    ----------
    name, dtype, meaning
        The column, its type and what it means; ``{values}`` in ``meaning`` reads as the
        ``values`` joined with ``" / "``.
    nullable
        Whether the column may hold nulls.
    stage
        The stage that owns (writes) the column.
    values
        The closed set of values of a label column, in reading order (the most valuable or
        urgent first): the one declaration the stages that write the column, the report and
        any schema derive theirs from (:func:`score_values`). Empty: an open column.
    """

    name: str
    dtype: pl.DataType
    meaning: str
    nullable: bool = True
    stage: str = "features"
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.values:
            object.__setattr__(self, "meaning", self.meaning.format(values=" / ".join(self.values)))


DRIVER_STRUCT = pl.Struct({"feature": pl.String(), "contribution": pl.Float64()})

SCORE_COLUMNS: tuple[ScoreColumn, ...] = (
    ScoreColumn("customer_id", pl.Int64(), "customer key", nullable=False),
    ScoreColumn(
        "as_of", pl.Date(), "the date the row describes (first day not observed)", nullable=False
    ),
    ScoreColumn(
        "spend_level",
        pl.String(),
        "{values} trailing-12-month spend",
        stage="segmentation",
        values=("high", "medium", "low"),
    ),
    ScoreColumn("age_band", pl.String(), "age band at as_of, 'unknown' when no birth date"),
    ScoreColumn("occupation", pl.String(), "occupation, 'unknown' when missing"),
    ScoreColumn("region", pl.String(), "home region"),
    ScoreColumn("area_type", pl.String(), "urban / rural / unknown"),
    ScoreColumn("plan_type", pl.String(), "prepaid / postpaid"),
    ScoreColumn(
        "segment_id", pl.Int64(), "behavioural segment, stable id across runs", stage="segmentation"
    ),
    ScoreColumn("segment_name", pl.String(), "readable segment name", stage="segmentation"),
    ScoreColumn(
        "lifecycle_stage",
        pl.String(),
        "{values}",
        stage="valuation",
        values=("new", "active", "at_risk", "dormant"),
    ),
    ScoreColumn("tenure_days", pl.Int64(), "days from signup to as_of"),
    ScoreColumn("recency_days", pl.Int64(), "days from last purchase to as_of"),
    ScoreColumn("frequency", pl.Int64(), "repeat purchase days (lifetimes definition)"),
    ScoreColumn("monetary_avg", pl.Float64(), "mean spend of repeat purchase days"),
    ScoreColumn("p_alive", pl.Float64(), "probability the customer still buys", stage="valuation"),
    ScoreColumn(
        "expected_purchases",
        pl.Float64(),
        "expected purchases over the CLV horizon",
        stage="valuation",
    ),
    ScoreColumn(
        "expected_avg_value", pl.Float64(), "expected spend per purchase", stage="valuation"
    ),
    ScoreColumn("clv", pl.Float64(), "discounted margin over the CLV horizon", stage="valuation"),
    ScoreColumn(
        "profit_contribution",
        pl.Float64(),
        "trailing 12 months revenue x margin - cost to serve",
        stage="valuation",
    ),
    ScoreColumn(
        "value_tier",
        pl.String(),
        "{values} by CLV",
        stage="valuation",
        values=("platinum", "gold", "silver", "bronze"),
    ),
    ScoreColumn(
        "churn_probability",
        pl.Float64(),
        "calibrated probability of churn within the horizon",
        stage="churn",
    ),
    ScoreColumn(
        "churn_risk_band",
        pl.String(),
        "{values}: high = worth contacting (retention_profit > 0; by "
        "probability alone when [retention] bands = 'probability' or without clv), "
        "medium / low by churn probability; lost: lifecycle_stage dormant, already gone",
        stage="churn",
        values=("high", "medium", "low", "lost"),
    ),
    ScoreColumn(
        "churn_drivers",
        pl.List(DRIVER_STRUCT),
        "top reasons (feature, signed contribution); empty below the driver threshold",
        stage="churn",
    ),
    ScoreColumn(
        "value_at_risk",
        pl.Float64(),
        "churn_probability x clv; 0 for a lost customer (nothing left to save)",
        stage="churn",
    ),
    ScoreColumn("loyalty_score", pl.Float64(), "predicted promoter probability", stage="loyalty"),
    ScoreColumn(
        "loyalty_class",
        pl.String(),
        "{values}",
        stage="loyalty",
        values=("promoter", "passive", "detractor"),
    ),
    ScoreColumn("influence_score", pl.Float64(), "reach in the call graph (0-1)"),
    ScoreColumn(
        "churn_reasons",
        pl.List(pl.String()),
        "churn_drivers in words: value, low / typical / high vs the scored population's "
        "quartiles, direction (e.g. '5G coverage 12% (low), raises risk'); since 1.1",
        stage="churn",
    ),
    ScoreColumn(
        "retention_profit",
        pl.Float64(),
        "expected profit of a retention offer to this customer ([retention] terms): "
        "accept_rate x churn_probability x (clv - offer_cost) - (1 - churn_probability) x "
        "offer_cost - contact_cost; positive = worth contacting (churn_risk_band high); null "
        "for a lost customer or without clv; since 1.2",
        stage="churn",
    ),
    ScoreColumn(
        "value_model",
        pl.String(),
        "the model that valued the row: sbg (postpaid, contract retention x monthly bill), "
        "hazard (postpaid, the customer's own monthly hazard x bill) or the purchase model "
        "(bgnbd, mbgnbd, pareto, ...); since 1.2",
        stage="valuation",
    ),
    ScoreColumn(
        "network_value",
        pl.Float64(),
        "what this customer's leaving is expected to cost through the call graph: the extra "
        "churn it induces among their contacts (the run's contagion estimate) x those "
        "contacts' clv; 0 without contacts or without evidence of contagion; since 1.3",
        stage="churn",
    ),
    ScoreColumn(
        "value_at_risk_network",
        pl.Float64(),
        "churn_probability x network_value; 0 for a lost customer; since 1.3",
        stage="churn",
    ),
)


def score_values(name: str) -> tuple[str, ...]:
    """The declared values of the scores column ``name``, in reading order.

    Raises
    ------
    ValueError
        If ``name`` is not a scores column with a closed set of values.
    """
    for c in SCORE_COLUMNS:
        if c.name == name and c.values:
            return c.values
    closed = [c.name for c in SCORE_COLUMNS if c.values]
    raise ValueError(f"{name!r} is not a scores column with declared values; those are {closed}")


LOST_STAGE = score_values("lifecycle_stage")[-1]
"""The lifecycle stage of a customer who has already left in all but name (``dormant``, the
last declared): nothing left to save, so no save list, drivers or value at risk for them."""
LOST_BAND = score_values("churn_risk_band")[-1]
"""``churn_risk_band`` of a customer in :data:`LOST_STAGE` (``lost``, the last declared)."""


def labels_at(name: str, labels: Sequence[str], index: Any) -> pl.Series:
    """The String column ``name`` holding ``labels[i]`` for each ``i`` of ``index`` (integers).

    Gathered by Polars: an array of one Python string per customer, the other way, held about
    0.5 GB at 10M customers and took seconds to convert.
    """
    return pl.Series(name, list(labels), dtype=pl.String).gather(index)


def owned_columns(owners: Sequence[str]) -> list[str]:
    """The ``crm.scores/v1`` columns whose owner label is one of ``owners``, in contract order
    (``customer_id`` first, whoever owns it: it is every frame's join key)."""
    names = [c.name for c in SCORE_COLUMNS if c.stage in owners and c.name != "customer_id"]
    return ["customer_id", *names]


def schema_difference(actual: pl.Schema, expected: pl.Schema) -> str | None:
    """None when ``actual`` is ``expected``; else what differs, in words for an error message.

    Names the missing, unexpected and mistyped columns (or says only the order differs).
    """
    if actual == expected:
        return None
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    wrong = [
        f"{c}: declared {expected[c]}, got {actual[c]}"
        for c in expected
        if c in actual and actual[c] != expected[c]
    ]
    if not (missing or extra or wrong):
        return "the column order differs from the declaration"
    return f"missing={missing}, unexpected={extra}, wrong types={wrong}"


def scores_schema(id_dtype: pl.DataType = pl.Int64) -> pl.Schema:
    """The `crm.scores/v1` schema, with the run's customer id type."""
    return pl.Schema(
        {c.name: (id_dtype if c.name == "customer_id" else c.dtype) for c in SCORE_COLUMNS}
    )


def dtype_label(dtype: pl.DataType) -> str:
    """A short, stable label for a dtype, as the README's contract table shows it."""
    if isinstance(dtype, pl.List):
        return f"list<{dtype_label(dtype.inner)}>"
    if isinstance(dtype, pl.Struct):
        inner = ", ".join(f"{f.name}: {dtype_label(f.dtype)}" for f in dtype.fields)
        return f"struct<{inner}>"
    return {
        pl.Int64: "int64",
        pl.Float64: "float64",
        pl.String: "string",
        pl.Date: "date",
        pl.Datetime: "datetime",
        pl.Boolean: "bool",
    }.get(dtype.base_type(), str(dtype))


def scores_contract_markdown() -> str:
    """The scores contract as the README's markdown table."""
    lines = ["| column | type | null? | stage | meaning |", "|---|---|---|---|---|"]
    for c in SCORE_COLUMNS:
        lines.append(
            f"| `{c.name}` | {dtype_label(c.dtype)} | {'yes' if c.nullable else 'no'} "
            f"| {c.stage} | {c.meaning} |"
        )
    return "\n".join(lines)
