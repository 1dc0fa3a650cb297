"""The results journal (hwbench/journal.py): each case appended once beside the results
file, checksummed, merged by readers, compacted at the end of a run, on resume and by
``hwbench compact``. Runs go through the in-process fake launcher: nothing forks. The
real-process kill -9 / resume cycles are in tests/test_journal_kill.py (full tier)."""

import errno
import os
import shutil
import warnings

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import hwbench
from hwbench import journal
from hwbench.commands.compact import compact as compact_cmd
from hwbench.errors import ResultsError
from hwbench.results import locked, read_record
from conftest import run_suite
from fakes.fake_launcher import FakeLauncher

BODY = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer"]\nbatch_sizes=[1,2,3,4,5]\n'


def ids(rec):
    return [c.case_id for c in rec.cases]


def snapshotting(tmp_path):
    """A FakeLauncher that copies the results file and its journal as each case starts
    (what a kill -9 at that instant would leave)."""
    snaps = []

    def before(job):
        (f,) = (tmp_path / "out").glob("*.json")
        d = tmp_path / f"snap{len(snaps)}"
        d.mkdir()
        shutil.copy(f, d / f.name)
        if journal.journal_path(f).exists():
            shutil.copy(journal.journal_path(f), d / (f.name + journal.SUFFIX))
        snaps.append(d / f.name)

    return FakeLauncher(before_case=before), snaps


def append_case(case) -> bytes:
    """The journal line a writer appends for ``case``."""
    return journal.encode(b'{"kind":"case","at":"2026-01-01T00:00:00+00:00","case":%s}'
                          % case.model_dump_json().encode())


# ------------------------------------------------------------------------------ lines
@given(st.text(), st.integers(0, 10**6))
def test_a_line_round_trips_and_any_cut_or_flipped_byte_is_refused(text, n):
    import json

    body = json.dumps({"kind": "case", "name": text}, ensure_ascii=False).encode()
    line = journal.encode(body)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # hostile text stays on one line
    assert journal.decode(line[:-1]) == {"kind": "case", "name": text}
    cut = n % (len(line) - 1)
    assert journal.decode(line[:cut]) is None  # torn anywhere
    i = n % (len(line) - 1)
    flipped = line[:i] + bytes([line[i] ^ 0x01]) + line[i + 1:-1]
    assert journal.decode(flipped) != {"kind": "case", "name": text}  # never the wrong entry silently


# ------------------------------------------------------------------------------ the run
def test_a_run_appends_each_case_once_and_compacts_at_the_end(tmp_path):
    fl, snaps = snapshotting(tmp_path)
    _, out = run_suite(tmp_path, BODY, launcher=fl)
    assert out.exit_code == 0 and out.record.status == "complete" and len(out.record.cases) == 5
    assert not journal.journal_path(out.path).exists()  # compacted
    assert read_record(out.path) == out.record
    # during the run the file held the segment's start; the journal one line per case
    for k, snap in enumerate(snaps):
        lines = (snap.parent / (snap.name + journal.SUFFIX)).read_bytes().splitlines()
        assert len(lines) == 1 + k  # the header, then the k cases finished
        base = snap.read_bytes()
        assert b'"cases": []' in base or b'"cases":[]' in base
        assert ids(read_record(snap)) == ids(out.record)[:k]  # readers merge it


def test_a_kill_at_any_instant_loses_at_most_the_running_case_and_resume_completes(tmp_path):
    fl, snaps = snapshotting(tmp_path)
    _, out = run_suite(tmp_path, BODY, launcher=fl)
    final = {c.case_id: c for c in out.record.cases}
    snap = snaps[3]  # killed as the 4th case started; its journal cut inside the 3rd line
    j = snap.parent / (snap.name + journal.SUFFIX)
    data = j.read_bytes()
    j.write_bytes(data[:data.rindex(b"\n", 0, len(data) - 1) + 40])  # a torn last append
    with pytest.warns(journal.JournalWarning, match="torn last line"):
        rec = read_record(snap)
    assert rec.status == "running" and ids(rec) == ids(out.record)[:2]
    # while the run's writer lives, a line without its newline is an append going on
    lock = snap.parent / f".{snap.name}.lock"
    lock.write_text(str(os.getpid()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_record(snap) == rec
    lock.write_text("999999999")  # a pid no process has: the writer died
    with pytest.warns(journal.JournalWarning, match="torn last line"):
        read_record(snap)
    assert all(c == final[c.case_id] for c in rec.cases)  # the saved cases, exactly
    again = FakeLauncher()
    with pytest.warns(journal.JournalWarning):
        res = hwbench.run_suite(tmp_path / "suite.toml", resume=snap, launcher=again)
    assert res.exit_code == 0 and len(again.jobs) == 3  # the torn case runs again
    done = read_record(snap)
    assert sorted(ids(done)) == sorted(final) and len(set(ids(done))) == 5
    assert all(c == rec.cases[i] for i, c in enumerate(done.cases[:2]))  # kept, unchanged
    assert done.status == "complete" and len(done.segments) == 2 and not j.exists()


def test_a_corrupt_middle_line_and_an_entry_that_does_not_validate_are_dropped_with_warnings(tmp_path):
    fl, snaps = snapshotting(tmp_path)
    run_suite(tmp_path, BODY, launcher=fl)
    snap = snaps[4]
    j = snap.parent / (snap.name + journal.SUFFIX)
    lines = j.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"status":"ok"', b'"status":"OK"')  # checksum no longer matches
    bad = journal.encode(b'{"kind":"case","at":"x","case":{"case_id":"evil"}}')[:-1]
    j.write_bytes(b"\n".join([*lines[:-1], bad, b""]))
    got = []
    rec = read_record(snap, got.append)
    assert len(rec.cases) == 3 and all(c.status == "ok" for c in rec.cases)
    assert any("line 3: checksum" in w for w in got) and any("does not validate" in w for w in got)


def test_a_stale_or_foreign_journal_is_ignored(tmp_path):
    fl, snaps = snapshotting(tmp_path)
    _, out = run_suite(tmp_path, BODY, launcher=fl)
    j = snaps[4].parent / (snaps[4].name + journal.SUFFIX)
    # a crash between compaction and removing the journal: the file is complete, the journal stale
    shutil.copy(j, journal.journal_path(out.path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_record(out.path) == out.record
    # another run's journal beside this file's start
    other = tmp_path / "other.json"
    shutil.copy(snaps[0], other)
    shutil.copy(j, journal.journal_path(other))
    text = other.read_text().replace(out.record.run_id, "otherrun")
    other.write_text(text)
    got = []
    assert read_record(other, got.append).cases == [] and "not of this file's run" in got[0]


def test_resume_of_a_killed_run_after_its_last_case_compacts_it(tmp_path):
    fl, snaps = snapshotting(tmp_path)
    body = BODY.replace("[1,2,3,4,5]", "[1,2]")
    _, out = run_suite(tmp_path, body, launcher=fl)
    # what a kill after the last case's append (before compaction) leaves
    snap = snaps[1]
    j = snap.parent / (snap.name + journal.SUFFIX)
    with open(j, "ab") as f:
        f.write(append_case(out.record.cases[1]))
    again = FakeLauncher()
    res = hwbench.run_suite(tmp_path / "suite.toml", resume=snap, launcher=again)
    assert "nothing to resume" in res.message and again.jobs == [] and not j.exists()
    rec = read_record(snap)
    assert rec.status == "complete" and ids(rec) == ids(out.record)


def test_hwbench_compact_folds_the_journal_in_and_is_refused_while_a_run_writes(tmp_path):
    fl, snaps = snapshotting(tmp_path)
    run_suite(tmp_path, BODY, launcher=fl)
    snap = snaps[3]
    before = read_record(snap)
    r = CliRunner().invoke(compact_cmd, [str(snap)])
    assert r.exit_code == 0 and "compacted: 3 cases, status interrupted" in r.output
    assert not journal.journal_path(snap).exists()
    after = read_record(snap)
    assert after.cases == before.cases and after.status == "interrupted"
    r = CliRunner().invoke(compact_cmd, [str(snap)])
    assert r.exit_code == 0 and "nothing to compact" in r.output
    with locked(snaps[4]):
        r = CliRunner().invoke(compact_cmd, [str(snaps[4])])
    assert isinstance(r.exception, ResultsError) and "another hwbench run" in str(r.exception)


def test_a_full_disk_keeps_what_was_saved_and_resume_finishes(tmp_path, monkeypatch):
    real, calls = os.write, []

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(journal.SUFFIX):
            calls.append(len(data))
            if len(calls) == 3:  # two cases appended, then the disk is full mid-line
                real(fd, bytes(data)[:30])
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(journal.os, "write", write)
    _, out = run_suite(tmp_path, BODY, launcher=FakeLauncher())
    monkeypatch.undo()
    assert out.exit_code == 2 and "cannot write the results file: No space left" in out.message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the torn line was cut off again: no warning
        rec = read_record(out.path)
    assert rec.status == "running" and len(rec.cases) == 2
    res = hwbench.run_suite(tmp_path / "suite.toml", resume=out.path, launcher=FakeLauncher())
    done = read_record(out.path)
    assert res.exit_code == 0 and len(done.cases) == 5 and done.cases[:2] == rec.cases


def test_hostile_case_ids_survive_the_journal(tmp_path):
    fl, snaps = snapshotting(tmp_path)
    _, out = run_suite(tmp_path, BODY, launcher=fl)
    snap = snaps[1]
    evil = out.record.cases[1].model_copy(update={"case_id": 'x\u2028\n"}\\{"crc32":"0"\x00\u202e'})
    with open(snap.parent / (snap.name + journal.SUFFIX), "ab") as f:
        f.write(append_case(evil))
    rec = read_record(snap)
    assert ids(rec) == [out.record.cases[0].case_id, evil.case_id]


# ------------------------------------------------------------------------------ bytes
def test_the_bytes_a_run_writes_grow_linearly_with_its_cases(tmp_path):
    # the bar, at a third of its size to stay quick (tests/perf/bench_write_bytes.py
    # prints 100 and 300 cases): 3x the cases may write at most 4x the bytes; whole-file
    # rewrites after every case wrote about 8x here. Bytes are counted, not timed.
    from perf.bench_write_bytes import measure

    small, large = measure(30, tmp_path / "small"), measure(90, tmp_path / "large")
    assert large["seam_bytes"] <= 4 * small["seam_bytes"], (small, large)
    assert large["seam_bytes"] <= 3 * large["file_bytes"]  # each case in the journal once, then in the file
    if not small["write_bytes"]:
        pytest.skip("write_bytes of /proc/self/io is not readable or not counted on this filesystem")
    assert large["write_bytes"] <= 4 * small["write_bytes"], (small, large)


def test_a_reader_racing_the_end_of_the_run_reads_the_file_again(tmp_path, monkeypatch):
    fl, snaps = snapshotting(tmp_path)
    _, out = run_suite(tmp_path, BODY, launcher=fl)
    snap = snaps[4]  # running, 4 cases in the journal
    real = journal.merged

    def compacted_meanwhile(rec, path, warn):
        # the run ends between the reader's read of the file and of the journal
        monkeypatch.setattr(journal, "merged", real)
        journal.compact(snap, real(rec, path, warn), "complete")
        return real(rec, path, warn)  # the journal is gone: the file as first read, alone

    monkeypatch.setattr(journal, "merged", compacted_meanwhile)
    rec = read_record(snap)
    assert rec.status == "complete" and ids(rec) == ids(out.record)[:4]


def test_compact_of_a_missing_or_foreign_file_is_one_line_exit_2(capsys, tmp_path):
    from hwbench.cli import main

    (tmp_path / "x.json").write_text('{"not": "results"}')
    for name in ("missing.json", "x.json"):
        with pytest.raises(SystemExit) as e:
            main(["compact", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and name in err and "Traceback" not in err
