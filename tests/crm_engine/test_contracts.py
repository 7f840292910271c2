"""The published contracts: the README's scores table is the declared one, column for column."""

from pathlib import Path

import polars as pl

from crm_engine.contracts import (
    INPUT_TABLES,
    SCORE_COLUMNS,
    SCORES_CONTRACT,
    SCORES_CONTRACT_VERSION,
    scores_contract_markdown,
    scores_schema,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_scores_table_matches_declaration() -> None:
    text = README.read_text()
    start = text.index("<!-- scores-contract:start -->") + len("<!-- scores-contract:start -->")
    end = text.index("<!-- scores-contract:end -->")
    assert text[start:end].strip() == scores_contract_markdown()


def test_scores_schema_uses_run_id_type() -> None:
    assert scores_schema(pl.String())["customer_id"] == pl.String
    assert len(scores_schema()) == len(SCORE_COLUMNS)


def test_every_input_table_is_dated_and_keyed() -> None:
    for name, contract in INPUT_TABLES.items():
        assert contract.time_column in contract.schema, name
        for key in contract.keys:
            assert key in contract.schema and key not in contract.nullable, name


def test_minor_versions_only_append() -> None:
    # 1.1 appended churn_reasons, 1.2 retention_profit and value_model, 1.3 network_value and
    # value_at_risk_network: positions of older columns never move
    names = [c.name for c in SCORE_COLUMNS]
    assert names[-5:] == [
        "churn_reasons",
        "retention_profit",
        "value_model",
        "network_value",
        "value_at_risk_network",
    ]
    column = SCORE_COLUMNS[names.index("churn_reasons")]
    assert column.dtype == pl.List(pl.String) and column.stage == "churn"
    assert scores_schema()["churn_reasons"] == pl.List(pl.String)
    assert scores_schema()["retention_profit"] == pl.Float64
    assert [c.stage for c in SCORE_COLUMNS[-4:]] == ["churn", "valuation", "churn", "churn"]
    assert all("since 1.2" in c.meaning for c in SCORE_COLUMNS[-4:-2])
    assert all("since 1.3" in c.meaning for c in SCORE_COLUMNS[-2:])
    assert SCORES_CONTRACT == "crm.scores/v1" and SCORES_CONTRACT_VERSION == "1.3"
