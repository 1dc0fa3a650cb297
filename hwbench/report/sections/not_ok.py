"""HTML section "Failed and skipped cases": every case that is not ok, with why."""

from __future__ import annotations

from ...analysis import tradeoffs as tr
from ..page import Page
from . import PAGE, Report


@PAGE.register(name="not_ok")
def not_ok_section(page: Page, rep: Report) -> None:
    page.section("Failed and skipped cases", key="not-ok")
    bad = tr.not_ok_cases(rep.df)
    if len(bad):
        page.add(page.frame(bad, [("hostname", "host"), ("case_id", "case"), ("status", "status"),
                                  ("reason", "reason")], csv_name="not-ok.csv", cls="bad wrap"))
    else:
        page.add('<p class="note">None: every case ran ok.</p>')
