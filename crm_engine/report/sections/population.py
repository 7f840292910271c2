"""Why the scored count differs from the customers in the input."""

from __future__ import annotations

from crm_engine.report.inputs import ReportInputs


def population_section(inp: ReportInputs) -> str:
    """Why the scored count differs from the customers in the input."""
    n = inp.height
    pop = inp.population
    if pop is None:
        return (
            f"<p class='population'>{n:,} customers scored: everyone still a customer on "
            f"{inp.as_of.isoformat()}.</p>"
        )
    day = inp.as_of.isoformat()
    why = [
        f"{count:,} {reason}"
        for count, reason in (
            (pop.n_churned_before_as_of, f"had already left before {day}"),
            (pop.n_not_yet_signed_up, f"sign up on or after {day}"),
            (pop.n_other, "have no signup date"),
        )
        if count
    ]
    if not why:
        return (
            f"<p class='population'><b>{n:,} customers scored</b>: every customer in the "
            "customers table.</p>"
        )
    listed = why[0] if len(why) == 1 else f"{', '.join(why[:-1])} and {why[-1]}"
    return (
        f"<p class='population'><b>{n:,} customers scored</b> of the {pop.n_customers:,} in the "
        f"customers table: {listed}; they are not scored.</p>"
    )
