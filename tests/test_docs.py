"""The documentation: the README as a landing page, references generated from the code
and current, no reference to a file outside the repository, and (full tier) the MkDocs
site builds with ``--strict``. How the references are made: docs/gen_reference.py."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
gen_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_reference)

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_references_are_current():
    """docs/reference/*.md are what the code gives now."""
    assert gen_reference.stale() == [], "docs/reference/ is stale: run python3 docs/gen_reference.py"


def test_references_cover_every_key_option_and_column():
    import click

    from hwbench import spec
    from hwbench.analysis.derive import SCHEMA
    from hwbench.cli import cli

    pages = gen_reference.generate()
    for model in gen_reference._nested_models(spec.SuiteSpec):
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in pages["suite.md"], (model.__name__, name)
    for name, command in cli.commands.items():
        assert f"## `hwbench {name}`" in pages["cli.md"]
        for p in command.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert all(o in pages["cli.md"] for o in p.opts), (name, p.opts)
    for column, _ in SCHEMA:
        assert f"| `{column}` |" in pages["columns.md"], column


@pytest.mark.parametrize("name, unit", [
    ("latency_ms_p50", "ms"), ("throughput_samples_per_s", "samples/s"), ("tokens_per_s", "tokens/s"),
    ("energy_per_sample_j", "J"), ("power_w_mean", "W"), ("memory_peak_bytes", "bytes"),
    ("gpu_pcie_rx_bytes_per_s_mean", "bytes/s"), ("latency_iqr_rel", "fraction 0-1"), ("cpu_util_pct_mean", "%"), ("achieved_tflops", "TFLOP/s"),
    ("mfu", "fraction 0-1"), ("scaling_efficiency", "fraction 0-1"), ("mfu_reason", ""), ("throughput_samples_per_s_per_rank", "samples/s"), ("iterations", ""),
])
def test_column_unit_from_its_name(name, unit):
    assert gen_reference.column_unit(name) == unit


def test_readme_is_a_landing_page():
    """At most ~200 lines, and still the two quickstart commands and the test commands;
    .ci/run runs the README's full tier."""
    assert len(README.splitlines()) <= 200
    for command in ('pip install -e ".[dev]" && hwbench run smoke', "python3 -m pytest --all",
                    "python -m hwbench.selfcheck"):
        assert command in README, command
    assert re.search(r"^ +python3 -m pytest *(#.*)?$", README, re.M), "the fast tier's command"
    assert "python3 -m pytest --all" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_links_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target


def test_nothing_cites_a_file_outside_the_repository():
    """The code and docs once cited design notes that the repository does not hold."""
    outside = re.compile(r"\b(?:DESIGN|STYLE)\.md\b")
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("hwbench/**/*.py"),
             *ROOT.glob("hwbench/**/*.toml"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("tests/**/*.py")]
    cited = [str(f.relative_to(ROOT)) for f in files if outside.search(f.read_text(encoding="utf-8"))]
    assert cited == [], cited


@pytest.mark.full
def test_mkdocs_build_strict(tmp_path):
    """The site builds with every warning an error (broken links and anchors included),
    offline, with the plain MkDocs theme."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (it is in the dev extra: pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "columns" / "index.html").is_file()
