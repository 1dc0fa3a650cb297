"""Report sections as registered modules: every --view is a registered view, an unknown
one is a one-line error naming the closest, a new view module is drawn by the terminal
and markdown renderers as it is, and the terminal report does not load the HTML page."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from hwbench.errors import UserError
from hwbench.report import format as fm
from hwbench.report import sections, views
from conftest import ROOT


def test_every_view_module_registers_the_view_of_its_name():
    for name in sections.VIEW_MODULES:
        assert callable(sections.view(name))
    assert sections.VIEWS.names() == sections.VIEW_MODULES


def test_every_page_module_registers_one_section_in_page_order():
    assert len(sections.page_sections()) == len(sections.PAGE_MODULES)
    assert set(sections.PAGE.names()) == set(sections.PAGE_MODULES)


def test_an_unknown_view_names_the_allowed_and_the_closest():
    with pytest.raises(UserError) as e:
        sections.view("tradeof")
    msg = str(e.value)
    assert "unknown report view 'tradeof'" in msg and "did you mean 'tradeoffs'?" in msg
    assert "\n" not in msg


def test_a_registered_section_is_drawn_by_both_renderers():
    reg: sections.Registry = sections.Registry("report view")

    @reg.register(name="toy")
    def toy(df):
        return [("toy table", df, [("case_id", "case"), ("throughput_samples_per_s", "samples/s")])]

    with pytest.raises(ValueError):
        reg.register(name="toy")(toy)
    df = pd.DataFrame({"case_id": ["a", "b"], "throughput_samples_per_s": [1234.5, 0.5]})
    tables = reg.get("toy")(df)
    term = views.render_terminal(tables, 80)
    assert term[0] == "toy table" and any(fm.column("throughput_samples_per_s")(1234.5) in line for line in term)
    md = views.render_markdown(tables)
    assert md.startswith("### toy table\n") and "| case | samples/s |" in md


def test_the_html_page_draws_a_views_tables():
    from hwbench.report.page import Page

    df = pd.DataFrame({"case_id": ["<b>a</b>"], "throughput_samples_per_s": [1234.5]})
    page = Page()
    page.tables("Toy", [("toy & table", df, [("case_id", "case"), ("throughput_samples_per_s", "samples/s")])], "toy")
    html = "".join(page.parts)
    assert '<h2 id="toy">Toy</h2>' in html and "<caption>toy &amp; table" in html
    assert "&lt;b&gt;a&lt;/b&gt;" in html and fm.column("throughput_samples_per_s")(1234.5) in html
    assert 'download="toy-1.csv"' in html


def test_one_formatter_per_column_unit():
    assert fm.column("latency_ms_p50")(1.5) == fm.duration_ms(1.5)
    assert fm.column("speedup")(2.0) == "2.00×"
    assert fm.column("throughput_samples_per_s_ddp") is fm.column("throughput_samples_per_s")  # per strategy
    assert fm.column("run_id")("0123456789") == "01234567"
    assert fm.column("nothing_known")(None) == ""


def test_the_terminal_report_does_not_load_the_html_page():
    code = ("import sys, hwbench.report.table, hwbench.report.views as v;"
            "print(any(m in sys.modules for m in ('hwbench.report.html', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
