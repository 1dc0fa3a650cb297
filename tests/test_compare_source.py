"""``compare`` over runs given without their cases (a CaseSource, as the store gives
them: hwbench.store.records.Held): the same Comparison as over the whole records, with
one case's results asked for at a time. Records built in memory (fast tier)."""

import numpy as np
import pandas as pd
import pytest

from hwbench.analysis import compare as cmp
from hwbench.records import Flag, SamplerResult
from test_compare import case, draws, record, repeat_draws


class Apart:
    """Runs held without their cases, their cases kept apart and handed out one case
    at a time; ``asked`` records what was asked, ``live`` the most results handed out
    and not yet released (their lists were asked again)."""

    def __init__(self, runs):
        self.runs = [r.model_copy(update={"cases": []}) for r in runs]
        self._cases = {id(s): list(r.cases) for s, r in zip(self.runs, runs)}
        self.asked: list[str] = []

    def case_ids(self, rec):
        cases = self._cases.get(id(rec))
        return None if cases is None else [c.case_id for c in cases]

    def load(self, wanted):
        for cid, refs in wanted:
            self.asked.append(cid)
            assert all(self._cases[id(r)][k].case_id == cid for r, k in refs)
            yield [self._cases[id(r)][k] for r, k in refs]


def host(cpu, proc, steal=None):
    summary = {"cpu_util_pct_mean": cpu, "proc_cpu_pct_mean": proc}
    if steal is not None:
        summary["cpu_steal_pct_mean"] = steal
    return {"host": SamplerResult(device=None, n_samples=3, summary=summary, info={"logical_cpus": 2})}


def sides():
    """Several runs a side, given out of date order: regressed, improved, failed now,
    failed in both, skipped now, missing, new, process-isolated repeats, a device that
    differs, machine conditions and a throttle flag on some results, a run given twice."""
    rng = np.random.default_rng(7)
    ids = [f"mlp:tiny/infer/bs{i}/fp32/eager/cpu" for i in range(1, 10)]

    def run(k, created, level, extra=(), dev="cpu-model", cpu=20.0):
        cs = [case(ids[0], repeat_draws(rng, 10 * level, repeats=4), isolation="process", energy_j=1.0 * level),
              case(ids[1], draws(rng, 5 / level, 40), energy_j=2.0),
              case(ids[2], draws(rng, 3, 30), device_name=dev),
              *extra]
        cs[1] = cs[1].model_copy(update={"collectors": host(cpu, 90.0, steal=1.0),
                                         "flags": [Flag(flag="throttled", detail="nvidia:0: hw_thermal")]})
        return record(cs, run_id=f"run{k}", created=f"2026-11-{created:02d}T00:00:00+00:00")

    base = [run(1, 5, 1.0, [case(ids[3], draws(rng, 4, 20)), case(ids[4], status="failed", reason="x"),
                             case(ids[5], draws(rng, 4, 20)), case(ids[6], draws(rng, 2, 20))]),
            run(2, 3, 1.0, [case(ids[3], draws(rng, 4, 20)), case(ids[5], draws(rng, 4, 20))], cpu=25.0),
            run(3, 4, 1.0)]
    new = [run(4, 9, 1.3, [case(ids[3], status="oom", reason="out of memory"),
                            case(ids[4], status="failed", reason="y"), case(ids[6], status="skipped", reason="z"),
                            case(ids[7], draws(rng, 4, 20))], dev="other", cpu=60.0),
           run(5, 8, 1.3, [case(ids[5], draws(rng, 4, 20))], cpu=55.0)]
    base.append(base[0])  # the same run twice: counted once
    return base, new


def same(a, b):
    pd.testing.assert_frame_equal(a.rows, b.rows)
    pd.testing.assert_frame_equal(a.env, b.env)
    assert (a.hardware, a.notes, a.load, a.options) == (b.hardware, b.notes, b.load, b.options)


@pytest.mark.parametrize("glob", [None, "mlp:tiny/infer/bs[1-6]/*"])
def test_runs_without_their_cases_compare_as_the_whole_runs(glob):
    base, new = sides()
    opts = cmp.Options(metrics=cmp.parse_metrics("energy_per_sample_j"), case_glob=glob)
    ref = cmp.compare(base, new, opts)
    want = {"regressed", "failed", "missing", "new", "unchanged"} if glob is None else {"regressed", "failed"}
    assert set(ref.rows["verdict"]) >= want and ref.hardware and ref.load["new"]["background_cpu_pct"]
    assert ref.rows["case_id"].nunique() == (8 if glob is None else 6)
    assert ref.rows["machine_changed"].any() and any("given 2 times" in n for n in ref.notes)
    src = Apart(base + new)
    held = {id(r): s for r, s in zip(base + new, src.runs)}
    got = cmp.compare([held[id(r)] for r in base], [held[id(r)] for r in new], opts, source=src)
    same(got, ref)
    assert len(src.asked) == len(set(src.asked)) == ref.rows["case_id"].nunique()  # each case once


def test_one_side_held_and_one_whole():
    base, new = sides()
    ref = cmp.compare(base, new)
    src = Apart(new)
    same(cmp.compare(base, src.runs, source=src), ref)


def test_case_count_and_unique_runs_of_held_runs():
    base, _ = sides()
    src = Apart(base)
    assert [cmp.case_count(r, src) for r in src.runs] == [len(r.cases) for r in base]
    assert cmp.case_count(base[0], src) == len(base[0].cases)  # a whole run: its own cases
    # two copies of a run: the one with more cases is kept (then the first given)
    short = base[0].model_copy(update={"cases": base[0].cases[:2]})
    held = Apart([short, base[0]])
    kept, warnings = cmp.unique_runs(held.runs, size=lambda r: cmp.case_count(r, held))
    assert len(kept) == 1 and kept[0] is held.runs[1] and warnings
    kept, _ = cmp.unique_runs(held.runs)  # counted by rec.cases, both look empty: the first given
    assert kept[0] is held.runs[0]


def test_a_judged_case_is_released_before_the_next_is_read():
    """One case's results in memory at a time: the sides given for a case are emptied
    when the next case is asked for (whole runs keep theirs)."""
    base, new = sides()
    src = Apart(base + new)
    held = {id(r): s for r, s in zip(base + new, src.runs)}
    B = cmp._collect([held[id(r)] for r in base], None, src)
    N = cmp._collect([held[id(r)] for r in new], None, src)
    assert all(isinstance(c, int) for s in [*B.values(), *N.values()] for _, c in s.results)
    ids = list(dict.fromkeys([*B, *N]))
    cases = cmp._loaded(ids, B, N, src)
    cid, b, n = next(cases)
    assert b.results and n.results and src.asked == [cid]
    assert all(c.case_id == cid and c.measurement.raw_times_s for _, c in b.ok)
    next(cases)
    assert not b.results and not n.results and len(src.asked) == 2
    whole = cmp._loaded(ids, *(cmp._collect(x, None) for x in (base, new)), None)
    _, b, _ = next(whole)
    next(whole)
    assert b.results  # nothing loaded, nothing released
