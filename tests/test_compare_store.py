"""``hwbench compare`` over folders through the store (hwbench.store.records): the
runs rebuilt from the cache give the output of the parsed results files, and a second
compare of the same folders parses no results file."""

import shutil
import sys

import pytest

from conftest import ROOT
from test_store import cli

EXAMPLES = ROOT / "results" / "examples"
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture
def sides(tmp_path, monkeypatch):
    """Folders a/ and b/ of example copies with new run ids and dates (the examples on
    both sides, so cases match), an old-schema golden file and a non-results file in b/;
    the store's cache in tmp_path."""
    sys.path.insert(0, str(ROOT / "tests" / "perf"))
    from make_fleet import make

    make(tmp_path / "fleet", 8, halves=True)
    for p in GOLDEN.glob("*.json"):
        shutil.copy(p, tmp_path / "fleet" / "b" / p.name)
    (tmp_path / "fleet" / "b" / "notes.json").write_text('{"hello": 1}')
    monkeypatch.setenv("HWBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "fleet" / "a", tmp_path / "fleet" / "b"


ARGS = ("--allow-different-hardware", "--metric", "throughput_samples_per_s,memory_peak_bytes:2")


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_compare_through_the_store_is_compare_of_the_files(sides, monkeypatch, fmt):
    import hwbench.results as results
    import hwbench.store as store_module
    from hwbench.commands import regression

    a, b = sides
    with monkeypatch.context() as m:  # the reference: every file parsed, as before the store
        m.setattr(regression, "_from_store", lambda paths, warn: None)
        ref = cli("compare", a, b, *ARGS, "--format", fmt)
    assert ref[0] in (0, 1) and ref[1], ref[2]
    parses = []
    real = store_module.Store

    class Counting(real):
        def close(self):
            parses.append(self.parses)
            super().close()

    monkeypatch.setattr(store_module, "Store", Counting)
    assert cli("compare", a, b, *ARGS, "--format", fmt)[:2] == ref[:2]  # builds the cache

    def no_parse(*args, **kwargs):
        raise AssertionError("a results file was parsed")

    monkeypatch.setattr(results, "read_record", no_parse)
    monkeypatch.setattr(results, "read_many", no_parse)
    assert cli("compare", a, b, *ARGS, "--format", fmt)[:2] == ref[:2]
    assert parses[:2] == [4, 4 + len(list(GOLDEN.glob("*.json"))) + 1] and parses[2:] == [0, 0]


def test_a_file_against_a_folder(sides, monkeypatch):
    """A side named as a file is parsed (no store for it), the folder goes through the
    store: the output of both parsed."""
    from hwbench.commands import regression

    a, b = sides
    one = sorted(a.glob("*.json"))[0]
    with monkeypatch.context() as m:
        m.setattr(regression, "_from_store", lambda paths, warn: None)
        ref = cli("compare", one, b, *ARGS, "--format", "csv")
    assert ref[0] in (0, 1) and ref[1].startswith("case_id"), ref[2]
    assert cli("compare", one, b, *ARGS, "--format", "csv")[:2] == ref[:2]
