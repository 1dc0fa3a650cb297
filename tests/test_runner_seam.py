"""The runner's scheduling through the launcher seam (hwbench.launch.Launcher) with an
in-process fake worker (tests/fakes/fake_launcher.py): order, saving after every case,
resume, process-isolated repeats, auto batch bookkeeping and signals -- without forking
torch. tests/test_runner.py proves the same wiring with real workers (full tier)."""

import os
import signal
import threading

import pytest

import hwbench
from hwbench import api, launch, runner
from hwbench.errors import ResultsError
from hwbench.results import read_record
from conftest import run_suite
from fakes.fake_launcher import STEP_S, FakeLauncher

BODY = '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer"]\nbatch_sizes=[2]\n'
MLP, ENC = "mlp:tiny/infer/bs2/fp32/eager/cpu", "encoder:tiny/infer/bs2/seq32/fp32/eager/cpu"


def statuses(record):
    return {c.case_id: c.status for c in record.cases}


def test_the_default_launcher_is_the_process_launcher():
    r = runner.Runner(suite=None, out_path=None)
    assert isinstance(r.launcher, launch.ProcessLauncher)


def test_cases_run_in_order_each_saved_before_the_next_starts(tmp_path, fake_launcher):
    seen = []

    def before(job):
        (f,) = (tmp_path / "out").glob("*.json")
        seen.append((job.case.case_id, [c.case_id for c in read_record(f).cases]))

    fake_launcher.before_case = before
    rows, out = run_suite(tmp_path, BODY, launcher=fake_launcher)
    assert seen == [(MLP, []), (ENC, [MLP])]
    assert out.exit_code == 0 and out.record.status == "complete" and fake_launcher.starts == 1
    assert read_record(out.path) == out.record
    for c in out.record.cases:
        assert c.status == "ok" and c.segment == 0
        assert c.measurement.raw_times_s == [[STEP_S * 2] * 3]
        assert 0 <= c.timing.fixed_cost_s <= c.timing.wall_s
    assert rows[MLP]["latency_ms_p50"] == pytest.approx(STEP_S * 2 * 1e3)
    assert rows[MLP]["throughput_samples_per_s"] == pytest.approx(2 / (STEP_S * 2))
    job = fake_launcher.jobs[0]
    assert (job.device, job.probe, job.fault, job.memory_limit_bytes) == ("cpu", False, None, None)


@pytest.mark.parametrize("kind,status,reason", [
    ("raise", "failed", "RuntimeError: injected failure"),
    ("segfault", "failed", "worker killed by signal SIGSEGV"),
    ("oom", "oom", "MemoryError"),
])
def test_a_broken_case_is_recorded_and_the_suite_goes_on_exit_3(tmp_path, fake_launcher, kind, status, reason):
    _, out = run_suite(tmp_path, BODY, fault=f"mlp:tiny/*={kind}", launcher=fake_launcher)
    mlp = next(c for c in out.record.cases if c.case_id == MLP)
    assert mlp.status == status and reason in mlp.reason and mlp.measurement is None
    assert statuses(out.record)[ENC] == "ok"
    assert out.record.status == "complete" and out.exit_code == api.EXIT_CASES_FAILED


def test_a_hang_is_a_timeout_and_the_memory_cap_reaches_the_worker(tmp_path, fake_launcher):
    _, out = run_suite(tmp_path, BODY, settings="timeout_s = 0.2\nmemory_limit_gb = 1",
                       fault="mlp:tiny/*=hang", launcher=fake_launcher)
    assert statuses(out.record) == {MLP: "timeout", ENC: "ok"}
    assert fake_launcher.jobs[1].memory_limit_bytes == 2**30


# ------------------------------------------------------------------------------ resume
def test_resume_runs_only_what_failed_in_a_new_segment(tmp_path):
    first_l, again = FakeLauncher(), FakeLauncher()
    _, first = run_suite(tmp_path, BODY, fault="mlp:tiny/*=raise", launcher=first_l)
    kept = next(c for c in first.record.cases if c.status == "ok")
    out = hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, launcher=again)
    assert [j.case.case_id for j in again.jobs] == [MLP]
    rec = read_record(first.path)
    by = {c.case_id: c for c in rec.cases}
    assert by[MLP].status == "ok" and by[MLP].segment == 1 and by[ENC] == kept
    assert len(rec.segments) == 2 and rec.status == "complete" and out.exit_code == 0


def test_resume_of_a_complete_file_starts_nothing(tmp_path, fake_launcher):
    _, first = run_suite(tmp_path, BODY, launcher=fake_launcher)
    before = first.path.read_bytes()
    again = FakeLauncher()
    out = hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, launcher=again)
    assert "nothing to resume" in out.message and again.jobs == [] and again.starts == 0
    assert first.path.read_bytes() == before


def test_resume_with_a_filter_leaves_the_rest_partial_then_completes(tmp_path, fake_launcher):
    body = '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[2]\n'
    _, first = run_suite(tmp_path, body, fault="*=raise", launcher=fake_launcher)
    assert list(statuses(first.record).values()) == ["failed"] * 4
    out = hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, filters=["family=mlp"],
                            launcher=FakeLauncher())
    rec = read_record(first.path)
    st = statuses(rec)
    assert sorted(v for k, v in st.items() if k.startswith("mlp")) == ["ok", "ok"]
    assert [v for k, v in st.items() if k.startswith("encoder")] == ["failed", "failed"]
    assert rec.status == "partial" and out.exit_code == 3
    hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, launcher=FakeLauncher())
    rec = read_record(first.path)
    assert rec.status == "complete" and set(statuses(rec).values()) == {"ok"} and len(rec.segments) == 3


def test_two_resumes_of_one_file_at_once_the_second_is_refused(tmp_path, fake_launcher):
    _, first = run_suite(tmp_path, BODY, fault="*=raise", launcher=fake_launcher)
    started, release = threading.Event(), threading.Event()

    def hold(path):
        started.set()
        release.wait(30)

    t = threading.Thread(target=lambda: hwbench.run_suite(tmp_path / "suite.toml", resume=first.path,
                                                          on_start=hold, launcher=FakeLauncher()))
    t.start()
    assert started.wait(30)
    try:
        with pytest.raises(ResultsError, match="another hwbench run .* is writing this results file"):
            hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, launcher=FakeLauncher())
    finally:
        release.set()
        t.join(60)
    assert read_record(first.path).status == "complete"


def test_an_unexpected_error_keeps_finished_cases_and_marks_the_run_interrupted(tmp_path, fake_launcher):
    def bug(job):
        if job.case.case_id == ENC:
            raise RuntimeError("a bug in the runner")

    fake_launcher.before_case = bug
    with pytest.raises(RuntimeError, match="a bug in the runner"):
        run_suite(tmp_path, BODY, launcher=fake_launcher)
    (f,) = (tmp_path / "out").glob("*.json")
    rec = read_record(f)
    assert rec.status == "interrupted" and statuses(rec) == {MLP: "ok"}


# ------------------------------------------------------------------------------ repeats
def test_process_isolated_repeats_run_one_worker_each_and_merge(tmp_path, fake_launcher):
    body = '[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[2]\n'
    rows, out = run_suite(tmp_path, body, settings="repeats = 3", launcher=fake_launcher)
    assert len(fake_launcher.jobs) == 3 and {j.settings.repeats for j in fake_launcher.jobs} == {1}
    (c,) = out.record.cases
    assert c.measurement.repeat_isolation == "process" and c.measurement.raw_times_s == [[STEP_S * 2] * 3] * 3
    assert c.measurement.measured_s == pytest.approx(3 * 3 * STEP_S * 2)
    # below the threshold, repeats share one worker
    two = FakeLauncher()
    (tmp_path / "two").mkdir()
    _, out = run_suite(tmp_path / "two", body, settings="repeats = 2", launcher=two)
    assert len(two.jobs) == 1 and out.record.cases[0].measurement.repeat_isolation == "iteration"


def test_a_failing_repeat_fails_the_case_and_stops_its_repeats(tmp_path):
    calls = []

    class Flaky(FakeLauncher):
        def run_worker(self, job, **kw):
            calls.append(job)
            if len(calls) == 2:
                job = launch.WorkerJob(**{**job.__dict__, "fault": "raise"})
            return super().run_worker(job, **kw)

    body = '[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[2]\n'
    _, out = run_suite(tmp_path, body, settings="repeats = 3", launcher=Flaky())
    (c,) = out.record.cases
    assert len(calls) == 2 and c.status == "failed" and c.reason.startswith("repeat 2: RuntimeError")


# ------------------------------------------------------------------------------ auto batch
AUTO = '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer"]\nbatch_sizes=["auto"]\n'


def test_auto_batch_searches_once_then_sweeps_powers_of_two_up_to_the_limit(tmp_path):
    fl = FakeLauncher(batch_limit=12)
    _, out = run_suite(tmp_path, AUTO, settings="memory_limit_gb = 2", launcher=fl)
    assert [(j.probe, j.case.batch_size) for j in fl.jobs][:1] == [(True, fl.jobs[0].case.batch_size)]
    assert [j.case.batch_size for j in fl.jobs[1:]] == [1, 2, 4, 8]
    (info,) = out.record.batch_limits.values()
    assert info.batch_limit == 12 and set(statuses(out.record).values()) == {"ok"}


def test_auto_batch_resume_reuses_the_limit_and_runs_only_what_is_left(tmp_path):
    class FailsBs4(FakeLauncher):
        def run_worker(self, job, **kw):
            if job.case.batch_size == 4 and not job.probe:
                job = launch.WorkerJob(**{**job.__dict__, "fault": "raise"})
            return super().run_worker(job, **kw)

    _, first = run_suite(tmp_path, AUTO, launcher=FailsBs4(batch_limit=8))
    assert sorted(statuses(first.record).values()) == ["failed", "ok", "ok", "ok"]
    again = FakeLauncher(batch_limit=1)  # a second search would find 1: it must not run
    hwbench.run_suite(tmp_path / "suite.toml", resume=first.path, launcher=again)
    assert [(j.probe, j.case.batch_size) for j in again.jobs] == [(False, 4)]
    rec = read_record(first.path)
    assert rec.status == "complete" and len(rec.cases) == 4 and set(statuses(rec).values()) == {"ok"}
    assert api.plan_run(tmp_path / "suite.toml", resume=first.path).todo == []


def test_a_failed_batch_search_fails_the_case_saying_so(tmp_path):
    _, out = run_suite(tmp_path, AUTO, launcher=FakeLauncher(batch_limit=None))
    (c,) = out.record.cases
    assert c.status == "oom" and c.reason.startswith("batch limit search: ")
    assert out.record.batch_limits == {} and out.exit_code == 3


# ------------------------------------------------------------------------------ signals
def signal_during(case_id, signum, times=1):
    def before(job):
        if job.case.case_id == case_id:
            for _ in range(times):
                os.kill(os.getpid(), signum)
    return before


def test_ctrl_c_finishes_the_running_case_then_stops_with_130(tmp_path):
    fl = FakeLauncher(before_case=signal_during(MLP, signal.SIGINT))
    _, out = run_suite(tmp_path, BODY, launcher=fl)
    assert statuses(out.record) == {MLP: "ok"} and out.record.status == "interrupted"
    assert out.exit_code == api.EXIT_SIGINT and "--resume" in out.message and len(fl.jobs) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_sigterm_abandons_a_case_that_outlives_the_grace_period_with_143(tmp_path):
    fl = FakeLauncher(before_case=signal_during(MLP, signal.SIGTERM))
    _, out = run_suite(tmp_path, BODY, fault="mlp:tiny/*=hang", grace_s=0.05, launcher=fl)
    assert out.record.cases == [] and out.record.status == "interrupted"  # abandoned: not a result
    assert out.exit_code == api.EXIT_SIGTERM


def test_a_second_ctrl_c_abandons_the_running_case_at_once(tmp_path):
    fl = FakeLauncher(before_case=signal_during(MLP, signal.SIGINT, times=2))
    _, out = run_suite(tmp_path, BODY, fault="mlp:tiny/*=hang", launcher=fl)
    assert out.record.cases == [] and out.exit_code == api.EXIT_SIGINT


def test_the_stop_request_rules():
    s = runner.StopRequest(grace_s=100)
    assert "finishing the current case" in s.on_signal(signal.SIGINT)
    assert s.requested and s.abandon_reason() is None and s.exit_code == 130
    assert "abandoning" in s.on_signal(signal.SIGTERM) and s.abandon_reason() == "abandoned after SIGINT"
    t = runner.StopRequest(grace_s=0)
    t.on_signal(signal.SIGTERM)
    assert t.exit_code == 143 and t.abandon_reason() == "abandoned after SIGTERM"
    p = runner.StopRequest()
    p.peer_stopped("node 1: SIGINT")
    assert p.exit_code == 130 and p.abandon_reason() is not None
