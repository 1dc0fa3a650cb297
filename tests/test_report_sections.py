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


def _example_report():
    from hwbench.analysis.derive import load_results_and_records
    from hwbench.report.table import machines

    df, records = load_results_and_records([ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"])
    return sections.Report(df, records, [h for h, _ in machines(df)])


def test_every_page_section_is_drawn_as_text_with_the_tables_of_its_html():
    from hwbench.report.page import Page

    rep = _example_report()
    for name, draw in zip(sections.PAGE_MODULES, sections.page_sections()):
        page = Page()
        draw(page, rep)
        tables = views.section_tables(name, rep)
        # one text table per HTML table the section drew, in the same order and with its columns
        assert len(page.frames) == "".join(page.parts).count("<table>"), name
        assert len(tables) == max(1, len(page.frames)), name
        for (title, df, cols), (_, df2, cols2) in zip(tables, page.frames):
            assert title and "<" not in title and cols == cols2 and df.equals(df2), name
        md = views.render_markdown(tables)
        term = views.render_terminal(tables, 80)
        assert md.startswith("### ") and term and all(len(line) <= 80 for line in term), name


def test_a_page_sections_table_titles_come_from_its_headings_and_captions():
    from hwbench.report.page import Page

    page = Page()
    df = pd.DataFrame({"case_id": ["a"], "throughput_samples_per_s": [1.0]})
    page.section("Top", key="top")
    page.section("sub", level=3, key="sub")
    page.add(page.frame(df, caption="the <b>first</b> &amp; only"))
    page.pair("<svg/>", "Figure: y = c·N<sup>k</sup>.", page.frame(df))
    page.add(page.frame(df, title="given"))
    page.section("Next", key="next")
    page.add(page.frame(df))
    assert [t for t, _, _ in page.frames] == ["Top / sub: the first & only", "Top / sub: Figure: y = c·N^k.", "given",
                                              "Next"]
    assert page.frames[0][2] == [("case_id", "case_id"), ("throughput_samples_per_s", "throughput_samples_per_s")]


def test_a_section_without_tables_says_so():
    rep = _example_report()
    (title, df, cols), = views.section_tables("parallel", rep)  # the smoke run has no parallel case
    assert title == "parallel: nothing to show in these results" and df.empty
    assert views.render_terminal([(title, df, cols)], 80)[-1] == "  (none)"
    with pytest.raises(UserError):
        views.section_tables("headlines", rep)
