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
    import hwbench.store.records  # noqa: F401 (store_module.records)
    from hwbench.commands import regression

    a, b = sides
    with monkeypatch.context() as m:  # the reference: every file parsed, as before the store
        m.setattr(regression, "_from_store", lambda *args, **kwargs: None)
        ref = cli("compare", a, b, *ARGS, "--format", fmt)
    assert ref[0] in (0, 1) and ref[1], ref[2]
    parses = []
    real = store_module.Store

    class Counting(real):
        def close(self):
            parses.append(self.parses)
            super().close()

    monkeypatch.setattr(store_module, "Store", Counting)
    monkeypatch.setattr(store_module.records, "Store", Counting)  # compare's (hwbench.store.records.Held)
    assert cli("compare", a, b, *ARGS, "--format", fmt)[:2] == ref[:2]  # builds the cache

    def no_parse(*args, **kwargs):
        raise AssertionError("a results file was parsed")

    monkeypatch.setattr(results, "read_record", no_parse)
    monkeypatch.setattr(results, "read_many", no_parse)
    assert cli("compare", a, b, *ARGS, "--format", fmt)[:2] == ref[:2]
    assert parses == [4 + 4 + len(list(GOLDEN.glob("*.json"))) + 1, 0]  # one store for both sides


def test_a_file_against_a_folder(sides, monkeypatch):
    """A side named as a file is parsed (no store for it), the folder goes through the
    store: the output of both parsed."""
    from hwbench.commands import regression

    a, b = sides
    one = sorted(a.glob("*.json"))[0]
    with monkeypatch.context() as m:
        m.setattr(regression, "_from_store", lambda *args, **kwargs: None)
        ref = cli("compare", one, b, *ARGS, "--format", "csv")
    assert ref[0] in (0, 1) and ref[1].startswith("case_id"), ref[2]
    assert cli("compare", one, b, *ARGS, "--format", "csv")[:2] == ref[:2]


def _variant(doc: dict, i: int, *, drop=(), fail=(), skip=(), repeats=None, twice=None, new_id=None):
    """The example run ``doc`` (its first 8 cases) as fleet run ``i``, changed: cases
    ``drop`` left out, ``fail`` failed, ``skip`` skipped, ``repeats`` = (case, n): that
    case's times split into n process-isolated repeats, ``twice``: that case given
    twice (the duplicate-case_id fallback), ``new_id``: that case renamed (a new case)."""
    import copy

    from make_fleet import retime

    doc = retime(copy.deepcopy(doc), i)
    cases = doc["cases"][:8]
    for k in fail:
        cases[k] = dict(cases[k], status="failed", reason="boom", measurement=None, facts=None, energy=None)
    for k in skip:
        cases[k] = dict(cases[k], status="skipped", reason="not here", measurement=None, facts=None, energy=None)
    if repeats is not None:
        k, n = repeats
        m = cases[k]["measurement"]
        t = m["raw_times_s"][0]
        cases[k] = dict(cases[k], measurement=dict(m, repeat_isolation="process",
                                                   raw_times_s=[t[j::n] for j in range(n)]))
    if new_id is not None:
        cases.append(dict(cases[new_id], case_id=cases[new_id]["case_id"] + "/renamed"))
    if twice is not None:
        cases.append(copy.deepcopy(cases[twice]))
    doc["cases"] = [c for k, c in enumerate(cases) if k not in drop]
    return doc


@pytest.fixture
def variants(tmp_path, monkeypatch):
    """Folders a/ and b/ of several runs each: failed, skipped, missing and new cases,
    process-isolated repeats, a run given twice in a/ (same run_id), a run with a case
    twice in b/ (read from its file); the store's cache in tmp_path."""
    import json

    from hwbench.records import RunRecord
    from hwbench.results import read_record, write_atomic

    sys.path.insert(0, str(ROOT / "tests" / "perf"))
    doc = read_record(EXAMPLES / "smoke-cpu-amd-epyc-2cores.json").model_dump(mode="json")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    runs = {a / "a0.json": _variant(doc, 0, repeats=(0, 3)), a / "a1.json": _variant(doc, 1, fail=[3], repeats=(0, 3)),
            a / "a2.json": _variant(doc, 2, drop=[5], repeats=(0, 4)),
            b / "b0.json": _variant(doc, 3, fail=[2], skip=[6], drop=[7], repeats=(0, 5)),
            b / "b1.json": _variant(doc, 4, fail=[2], drop=[7], new_id=4, repeats=(0, 3)),
            b / "b2.json": _variant(doc, 5, fail=[2], twice=1, drop=[7], repeats=(0, 3))}
    for p, d in runs.items():
        write_atomic(p, RunRecord.model_validate(d))
    (a / "a0-copy.json").write_text((a / "a0.json").read_text())
    monkeypatch.setenv("HWBENCH_CACHE", str(tmp_path / "cache"))
    assert len(json.loads((b / "b2.json").read_text())["cases"]) == 8
    return a, b


@pytest.mark.parametrize("args", [("--format", "csv"), ("--format", "json"),
                                  ("--format", "table", "--case", "mlp:tiny/infer/*"),
                                  ("--format", "markdown", "--metric", "energy_per_sample_j")])
def test_compare_case_by_case_through_the_store_is_compare_of_the_files(variants, monkeypatch, args):
    """Status rows (failed, skipped, missing, new), repeats, globs, a run given twice and
    a run with a case twice: the output of the parsed files, byte for byte, whether the
    store reads one case a query or many."""
    from hwbench.commands import regression
    from hwbench.store import records

    a, b = variants
    with monkeypatch.context() as m:  # the reference: every file parsed
        m.setattr(regression, "_from_store", lambda *args, **kwargs: None)
        ref = cli("compare", a, b, "--allow-different-hardware", *args)
    assert ref[0] in (0, 1) and ref[1], ref[2]
    if "csv" in args:
        import io

        import pandas as pd

        rows = pd.read_csv(io.StringIO(ref[1]))
        assert set(rows["verdict"]) >= {"failed", "missing", "new", "unchanged"}, set(rows["verdict"])
        assert "repeat" in set(rows["samples"]) and "given 2 times" in ref[2]
    assert cli("compare", a, b, "--allow-different-hardware", *args) == ref  # builds the cache
    import hwbench.results as results

    parsed, read = [], results.read_record
    monkeypatch.setattr(results, "read_record", lambda p, *k, **kw: parsed.append(p) or read(p, *k, **kw))
    monkeypatch.setattr(results, "read_many", None)  # the store, not the files
    monkeypatch.setattr(records, "BATCH_ROWS", 1)  # one case a batch
    assert cli("compare", a, b, "--allow-different-hardware", *args) == ref
    assert [str(p) for p in parsed] == [str(b / "b2.json")]  # only the run with a case twice


def test_one_folder_on_both_sides(variants, monkeypatch):
    """The same folder as BASELINE and NEW: its runs read once into the store, held
    twice (one record per side), the output of the parsed files."""
    from hwbench.commands import regression

    a, _ = variants
    with monkeypatch.context() as m:
        m.setattr(regression, "_from_store", lambda *args, **kwargs: None)
        ref = cli("compare", a, a, "--format", "json")
    assert ref[0] == 0 and '"unchanged"' in ref[1], ref[2]
    assert cli("compare", a, a, "--format", "json") == ref


def test_cases_are_read_in_batches_of_bounded_size(variants, monkeypatch):
    """Each query of the store reads at most BATCH_ROWS raw times (a case's result in a
    run counting RECORD_ROWS), or one case that has more; a batch stops at the case
    that would overflow it; every case is read once."""
    from hwbench.store import records

    a, b = variants
    assert cli("compare", a, b, "--allow-different-hardware", "--format", "csv")[0] in (0, 1)  # the cache
    batches, counts, refs = [], {}, {}
    fetch, count, load = records.Held._fetch, records.Held._counts, records.Held.load

    def spy(self, wanted):
        def seen():
            for cid, r in wanted:
                refs[cid] = len(r)
                yield cid, r
        return load(self, seen())

    monkeypatch.setattr(records.Held, "_counts", lambda self: counts.update(count(self)) or counts)
    monkeypatch.setattr(records.Held, "_fetch", lambda self, cids: batches.append(cids) or fetch(self, cids))
    monkeypatch.setattr(records.Held, "load", spy)
    monkeypatch.setattr(records, "BATCH_ROWS", 5000)
    code, out, err = cli("compare", a, b, "--allow-different-hardware", "--format", "csv")
    assert code in (0, 1), err
    flat = [c for batch in batches for c in batch]
    assert len(flat) == len(set(flat)) == len([c for c in refs if refs[c]])

    def cost(cids):
        return sum(counts.get(c, 0) + records.RECORD_ROWS * refs[c] for c in cids)

    assert any(len(batch) > 1 for batch in batches) and any(cost(batch) > 5000 for batch in batches)
    assert all(len(batch) == 1 or cost(batch) <= 5000 for batch in batches), [cost(x) for x in batches]
    for batch, after in zip(batches, batches[1:]):
        assert cost(batch) + cost(after[:1]) > 5000  # it stopped at the case that would overflow it
