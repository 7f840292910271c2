"""The page: CSS, the sections in reading order, and writing ``report.html``."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

from crm_engine.report.inputs import ReportInputs
from crm_engine.report.section import Section
from crm_engine.report.sections import (
    act,
    appendix,
    churn,
    lifecycle,
    loyalty,
    quality,
    segments,
    since,
    value,
)
from crm_engine.report.sections.headline import headline_section
from crm_engine.report.sections.population import population_section

SECTIONS: tuple[Section, ...] = (
    act.SECTION,
    segments.SECTION,
    lifecycle.SECTION,
    value.SECTION,
    churn.SECTION,
    loyalty.SECTION,
    since.SECTION,
    quality.SECTION,
    appendix.SECTION,
)
"""The page's sections in reading order, after the population line and the headline cards."""

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1150px;color:#1d2733;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e3e8ee;padding-bottom:.3rem;margin-top:2.4rem}
h3{margin-top:1.6rem}
.sub{color:#5b6b7c;margin-top:0}.population{margin:.2rem 0 1rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#f4f7fa;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.card b{display:block;font-size:1.45rem}
.card span{color:#5b6b7c;font-size:.85rem}
table{border-collapse:collapse;font-size:.86rem;margin:.6rem 0}
th,td{border-bottom:1px solid #e3e8ee;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f7fa}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td{min-width:3.5rem;max-width:22rem;overflow-wrap:break-word}
.tablewrap{overflow-x:auto;max-width:100%}
table.matrix td{text-align:right;min-width:7.5rem;font-variant-numeric:tabular-nums}
table.matrix td b{display:block;font-size:1rem}table.matrix td span{color:#3d4b59;font-size:.8rem}
table.matrix th[scope=row]{white-space:nowrap}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(480px,100%),1fr));gap:1rem}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #eef1f4;border-radius:6px}
figcaption{color:#5b6b7c;font-size:.85rem}
caption{text-align:left;padding:.2rem 0}
.segcards{margin-bottom:1.2rem;display:grid;grid-template-columns:repeat(auto-fill,minmax(min(260px,100%),1fr));
gap:.8rem}
.seg{background:#f4f7fa;border-radius:8px;padding:.7rem 1rem}
.seg h3{margin:.1rem 0 .2rem;font-size:1.02rem}.seg p{margin:.2rem 0;font-size:.86rem}
.seg dl{display:grid;grid-template-columns:auto auto;gap:.1rem .8rem;margin:.4rem 0;
font-size:.86rem}.seg dt{color:#5b6b7c}.seg dd{margin:0;text-align:right}
.warn{color:#8a5a00}.muted{color:#8a97a6}
a.download{font-weight:600}
"""


def render_report(inp: ReportInputs, rendered: dict[str, str] | None = None) -> str:
    """The whole report as one HTML string.

    ``rendered``: the sections (by id) of an earlier render of the same inputs but
    ``customer_rows`` and ``save_first_file``, reused but for the private ones
    (:attr:`Section.private`); the sections rendered now are added to it.
    """
    tracking = ""
    if inp.mlflow_run_id:
        tracking = (
            f" · MLflow run <code>{html.escape(inp.mlflow_run_id)}</code>"
            f" in <code>{html.escape(inp.tracking_uri or '')}</code>"
        )
    done = {} if rendered is None else rendered
    sections = []
    for section in SECTIONS:
        if section.private or section.id not in done:
            done[section.id] = section.render(inp)
        sections.append(done[section.id])
    body = "".join(
        [
            "<h1>Customer base report</h1>",
            f"<p class='sub'>As of {inp.as_of.isoformat()} · run <code>{html.escape(inp.run_id)}"
            f"</code>{tracking}</p>",
            population_section(inp),
            headline_section(inp),
            *sections,
        ]
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>crm-engine report {inp.as_of.isoformat()}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_report(inp: ReportInputs, path: Path, shared: Path | None = None) -> Path:
    """Render and write ``report.html`` to ``path``; with ``shared``, also the copy to share
    (MLflow's) there: the same inputs without customer rows or the save-first link, the
    sections that show neither rendered once for both (their charts are most of the time)."""
    path = Path(path)
    rendered: dict[str, str] = {}
    path.write_text(render_report(inp, rendered), encoding="utf-8")
    if shared is not None:
        public = dataclasses.replace(inp, customer_rows=False, save_first_file=None)
        Path(shared).write_text(render_report(public, rendered), encoding="utf-8")
    return path
