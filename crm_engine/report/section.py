"""A report section: its heading, the scores columns it needs, and what it says without them."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from crm_engine.contracts import SCORE_COLUMNS
from crm_engine.report.formatting import title_case
from crm_engine.report.inputs import ReportInputs

_OWNER = {c.name: c.stage for c in SCORE_COLUMNS}


@dataclass(frozen=True)
class Section:
    """One ``<h2>`` section of the page; "this stage did not run" is handled here, once.

    Parameters
    ----------
    id, title
        The heading's anchor and text.
    body
        What follows the heading in a run that has what the section needs.
    needs
        ``crm.scores/v1`` columns the section is built from: when one holds no value, the
        stage that owns it (the contract's ``ScoreColumn.stage``) did not run, and the section
        says so instead of rendering ``body``.
    not_run
        What it says then (HTML); a function of the inputs for a reason only they know.
        Empty: "<stage> stage not run." for the stages owning ``needs``.
    ran
        Whether the section has what it needs, when that is not a column (the appendix
        needs a model report); None: every column of ``needs`` has a value.
    private
        Whether it shows customer rows or links the save-first list (``customer_rows``,
        ``save_first_file``): rendered anew for the copy of the report shared without them.
    """

    id: str
    title: str
    body: Callable[[ReportInputs], str]
    needs: tuple[str, ...] = ()
    not_run: str | Callable[[ReportInputs], str] = ""
    ran: Callable[[ReportInputs], bool] | None = None
    private: bool = False

    def has_run(self, inp: ReportInputs) -> bool:
        """Whether the stages this section shows ran in this report's run."""
        if self.ran is not None:
            return self.ran(inp)
        return all(inp.has(c) for c in self.needs)

    def skipped(self, inp: ReportInputs) -> str:
        """What the section says when its stages did not run (HTML)."""
        if callable(self.not_run):
            return self.not_run(inp)
        if self.not_run:
            return self.not_run
        stages = list(dict.fromkeys(_OWNER[c] for c in self.needs))
        return f"{title_case(' or '.join(stages))} stage not run."

    def render(self, inp: ReportInputs) -> str:
        """The heading, then the body or why there is none."""
        head = f"<h2 id='{self.id}'>{html.escape(self.title)}</h2>"
        if self.has_run(inp):
            return head + self.body(inp)
        return f"{head}<p class='muted'>{self.skipped(inp)}</p>"
