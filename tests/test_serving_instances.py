"""Several model instances behind the LoadGen SUT (hwbench.serving.instances, the
``instances`` setting): the SUT's threads against fake forward functions through real
LoadGen tests (in process, threads only), the thread-division rule, real replicas of a
prepared model, the device layer's lanes (CUDA streams through a fake ``torch.cuda``
at the layer's boundary), suite validation and the report's grouping."""

import threading
import time

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hwbench import devices, load_results
from hwbench.case import Case
from hwbench.errors import ConfigError
from hwbench.serving import instances, slo, sut
from hwbench.spec import parse_suite

SLEEP_S = 0.002


def sleeper(calls: list, i: int, s: float = SLEEP_S):
    def forward(n: int) -> None:
        calls.append((i, n, threading.get_ident()))
        time.sleep(s)
    return forward


def check_log(r: sut.TestRun, n_instances: int) -> None:
    """Every sample completed exactly once; each instance ran its batches one after
    another; batches left the queue in issue order."""
    ids = [qid for b in r.log for qid, _ in b.samples]
    assert len(ids) == len(set(ids)), "a sample was completed twice"
    assert len(ids) == sum(r.batches) == sum(len(b.samples) for b in r.log)
    assert len(r.instance_batches) == n_instances and sum(r.instance_batches) == len(r.batches)
    for i in range(n_instances):
        mine = [b for b in r.log if b.instance == i]
        assert len(mine) == r.instance_batches[i]
        for a, b in zip(mine, mine[1:]):
            assert b.taken_ns >= a.done_ns, "an instance ran two batches at once"
    by_take = sorted(r.log, key=lambda b: b.taken_ns)
    issued = [t for b in by_take for _, t in b.samples]
    assert issued == sorted(issued), "a batch was taken before an older queued sample"


@pytest.mark.parametrize("scenario,kw", [
    ("offline", {"expected_qps": 2000.0}),
    ("server", {"target_qps": 600.0, "slo_ms": 50.0}),
])
def test_two_instances_complete_every_query_once_and_both_serve(tmp_path, scenario, kw):
    calls: list = []
    inits: list = []
    r = sut.run_test(scenario, [sleeper(calls, 0), sleeper(calls, 1)], max_batch=4, max_batch_wait_s=0.0005,
                     outdir=tmp_path / "lg", duration_s=0.3, min_queries=100,
                     thread_init=lambda i: inits.append((i, threading.get_ident())), **kw)
    check_log(r, 2)
    assert all(n > 0 for n in r.instance_batches), r.instance_batches  # both instances were used
    # each instance ran in its own thread, the one its thread_init ran in
    threads = {i: {t for j, _, t in calls if j == i} for i in (0, 1)}
    assert threads[0].isdisjoint(threads[1]) and all(len(t) == 1 for t in threads.values())
    assert {i: t for i, t in inits} == {i: next(iter(t)) for i, t in threads.items()}
    assert len(r.latencies_s) == sum(r.batches)  # one latency per sample LoadGen issued
    # the window: first issue to the last completion of either instance
    first = min(t for b in r.log for _, t in b.samples)
    assert r.window_s == pytest.approx((max(b.done_ns for b in r.log) - first) / 1e9)
    if scenario == "server":  # hwbench's p99 is still LoadGen's own
        lat_ms = [x * 1e3 for x in r.latencies_s]
        ours, theirs = slo.percentile_lg(lat_ms, 99), sut.summary_percentile_ms(r.summary, 99)
        assert abs(ours - theirs) <= 0.01 * theirs


def test_offline_samples_are_served_by_whichever_instance_is_free(tmp_path):
    """Instance 0 is 10x slower than instance 1: the fast one takes most batches (the
    queue is shared, not split evenly)."""
    calls: list = []
    r = sut.run_test("offline", [sleeper(calls, 0, 0.01), sleeper(calls, 1, 0.001)], max_batch=2,
                     max_batch_wait_s=0, outdir=tmp_path / "lg", duration_s=0.2, min_queries=200,
                     expected_qps=1000.0)
    check_log(r, 2)
    assert r.instance_batches[1] > 2 * r.instance_batches[0] > 0


def test_a_crash_in_one_instance_fails_the_test_with_its_reason(tmp_path):
    calls: list = []

    def boom(n):
        time.sleep(0.001)
        raise RuntimeError("kernel exploded")

    with pytest.raises(RuntimeError, match=r"the SUT failed during the LoadGen test: kernel exploded "
                                           r"\(instance 2 of 2\)"):
        sut.run_test("offline", [sleeper(calls, 0), boom], max_batch=2, max_batch_wait_s=0, outdir=tmp_path / "lg",
                     duration_s=0.1, min_queries=100, expected_qps=500.0)


def test_a_failing_thread_init_fails_the_test(tmp_path):
    def init(i):
        if i == 1:
            raise ValueError("no threads for you")

    with pytest.raises(RuntimeError, match=r"no threads for you \(instance 2 of 2\)"):
        sut.run_test("offline", [lambda n: None, lambda n: None], max_batch=2, max_batch_wait_s=0,
                     outdir=tmp_path / "lg", duration_s=0.05, min_queries=20, expected_qps=200.0, thread_init=init)


def test_batching_waits_for_the_current_oldest_sample():
    """With several instances waiting, a deadline is the oldest *queued* sample's:
    after one instance took the batch it waited for, the next one waits afresh."""

    class Lg:
        def QuerySampleResponse(self, *a):  # noqa: N802 - LoadGen's name
            return a

        def QuerySamplesComplete(self, r):  # noqa: N802
            done.extend(x[0] for x in r)

    class S:
        def __init__(self, i):
            self.id = i

    done: list = []
    calls: list = []
    b = sut.BatchingSUT(Lg(), [sleeper(calls, 0, 0), sleeper(calls, 1, 0)], max_batch=8, max_batch_wait_s=0.05)
    try:
        b.issue([S(1), S(2)])
        time.sleep(0.02)
        b.issue([S(3)])
        t_end = time.monotonic() + 2
        while len(done) < 3 and time.monotonic() < t_end:
            time.sleep(0.005)
    finally:
        b.stop()
    assert sorted(done) == [1, 2, 3]
    # the three queued within one wait: one batch of three (nobody took a partial batch early)
    assert [len(x.samples) for x in b.log] == [3]


# ------------------------------------------------------------------ the thread rule
def test_threads_per_instance_known_answers():
    assert instances.threads_per_instance(8, 1) == 8
    assert instances.threads_per_instance(8, 2) == 4
    assert instances.threads_per_instance(8, 3) == 2
    assert instances.threads_per_instance(2, 4) == 1
    with pytest.raises(ValueError):
        instances.threads_per_instance(0, 2)


@given(st.integers(1, 512), st.integers(1, 64))
def test_instances_never_use_more_threads_than_the_case_unless_one_each(total, n):
    k = instances.threads_per_instance(total, n)
    assert k >= 1
    assert k * n <= total or k == 1
    assert (k + 1) * n > total  # the largest equal share


def test_enter_thread_sets_the_threads_of_its_own_thread_only():
    before = torch.get_num_threads()
    inst = instances.Instance(prep=None, lane=None, inputs=torch.zeros(1), threads=1)
    seen = []

    def body():
        inst.enter_thread()
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [1] and torch.get_num_threads() == before


# ------------------------------------------------------------------ replicas
def tiny_case(**kw):
    return Case("mlp:tiny", "infer", 4, "fp32", "eager", "cpu", scenario="offline", **kw)


def test_replicas_are_equal_copies_with_their_own_storage():
    from hwbench import models
    from hwbench.suite_format import Settings

    case, settings = tiny_case(instances=3), Settings()
    fam, size = models.get(case.model)
    cfg = fam.sizes[size]
    first = instances.build_replica(case, settings, fam, cfg, torch.device("cpu"))
    reps = instances.replicas(first, 3, lambda: instances.build_replica(case, settings, fam, cfg, torch.device("cpu")))
    assert len(reps) == 3 and len({id(r.model) for r in reps}) == 3
    x = torch.randn(4, *_in_shape(first.model))
    outs = [r.model(x) for r in reps]
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    ptrs = [{id(p): p.data_ptr() for p in r.model.parameters()} for r in reps]
    assert set(ptrs[0].values()).isdisjoint(ptrs[1].values())


def _in_shape(model):
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    return (first.in_features,)


def test_replicas_refuse_a_build_that_differs_or_shares():
    from hwbench.backends import Prepared

    def prep(m):
        return Prepared(m, torch.float32, lambda: None)

    torch.manual_seed(0)
    a = torch.nn.Linear(3, 3)
    with pytest.raises(RuntimeError, match="differs from the first instance in 'weight'"):
        instances.replicas(prep(a), 2, lambda: prep(torch.nn.Linear(3, 3)))
    with pytest.raises(RuntimeError, match="shares 'weight'"):
        instances.replicas(prep(a), 2, lambda: prep(a))


# ------------------------------------------------------------------ lanes (device layer)
class FakeStream:
    def __init__(self, mod, device):
        self.mod, self.device, self.synced = mod, device, 0

    def synchronize(self):
        self.synced += 1


class FakeCuda:
    """torch.cuda's stream API as the lanes use it: Stream(device), stream(s) as a
    context that makes s current in the calling thread, a device-wide synchronize."""

    def __init__(self):
        self.local = threading.local()
        self.device_syncs = 0

    def Stream(self, device):  # noqa: N802 - torch's name
        return FakeStream(self, device)

    def stream(self, s):
        mod = self

        class Ctx:
            def __enter__(self):
                mod.local.current = s

            def __exit__(self, *exc):
                mod.local.current = None

        return Ctx()

    def current(self):
        return getattr(self.local, "current", None)

    def synchronize(self, device=None):
        self.device_syncs += 1


@pytest.fixture
def fake_cuda():
    fake = FakeCuda()
    prev = devices.use_module("cuda", fake)
    yield fake
    devices.use_module("cuda", prev)


def test_each_gpu_instance_runs_on_its_own_stream_and_waits_for_it_alone(fake_cuda):
    from hwbench.backends import Prepared

    acc = devices.KINDS.get("cuda")
    seen = []

    class M(torch.nn.Module):
        def forward(self, x):
            seen.append((self.tag, fake_cuda.current()))
            return x

    preps = []
    for tag in (0, 1):
        m = M()
        m.tag = tag
        preps.append(Prepared(m, torch.float32, _no_autocast))
    insts = instances.make_instances(preps, torch.zeros(4, 2), acc, torch.device("cuda:0"), None)
    assert all(i.threads is None for i in insts)  # a device with streams: threads not divided
    s0, s1 = insts[0].lane.stream, insts[1].lane.stream
    assert isinstance(s0, FakeStream) and s0 is not s1
    syncs = fake_cuda.device_syncs
    insts[0].forward(2)
    insts[1].forward(3)
    assert seen == [(0, s0), (1, s1)]
    assert (s0.synced, s1.synced) == (1, 1) and fake_cuda.device_syncs == syncs  # no device-wide wait


def _no_autocast():
    import contextlib

    return contextlib.nullcontext()


def test_cpu_instances_have_no_stream_and_share_the_threads():
    from hwbench.backends import Prepared

    acc = devices.KINDS.get("cpu")
    preps = [Prepared(torch.nn.Identity(), torch.float32, _no_autocast) for _ in range(2)]
    insts = instances.make_instances(preps, torch.zeros(4, 2), acc, torch.device("cpu"), 2)
    assert [i.threads for i in insts] == [1, 1] and all(i.lane.stream is None for i in insts)
    insts[0].forward(2)  # no-op synchronisation
    assert devices.KINDS.get("mps").lane(torch.device("mps")).stream is None  # a kind without streams


# ------------------------------------------------------------------ calibration
def test_calibration_adds_the_instances_rates_and_reports_a_failure(monkeypatch):
    from hwbench.serving import run

    monkeypatch.setattr(run, "CALIBRATE_S", 0.05)

    class I:
        def __init__(self, s, fail=False):
            self.s, self.fail = s, fail

        def enter_thread(self):
            pass

        def forward(self, n):
            if self.fail:
                raise RuntimeError("bad replica")
            time.sleep(self.s)

    full = run._calibrate([I(0.004), I(0.004)], 8)
    assert 2 * 8 / 0.004 * 0.5 < full <= 2 * 8 / 0.004 * 1.01  # sleeps take at least their time
    with pytest.raises(RuntimeError, match="instance 2 of 2 failed while calibrating: bad replica"):
        run._calibrate([I(0.001), I(0.001, fail=True)], 8)


# ------------------------------------------------------------------ suites
BASE = '[suite]\nname = "s"\n[settings]\nscenario_duration_s = 2\n'


def test_instances_expand_into_loadgen_cases_only():
    s = parse_suite(BASE + 'instances = 2\n' + """
[[matrix]]
models = ["mlp:tiny"]
batch_sizes = [8]
scenarios = ["offline"]
[[matrix]]
models = ["mlp:tiny"]
batch_sizes = [8]
scenarios = ["offline"]
instances = 3
[[matrix]]
models = ["mlp:tiny"]
batch_sizes = [8]
[[matrix]]
models = ["llama:tiny"]
modes = ["generate"]
seq_lens = [16]
output_lens = [8]
request_rates = [1]
""")
    ids = [(c.case_id, c.instances) for c in s.cases]
    assert ids == [("mlp:tiny/infer/bs8/fp32/eager/cpu/inst2/offline", 2),
                   ("mlp:tiny/infer/bs8/fp32/eager/cpu/inst3/offline", 3),
                   ("mlp:tiny/infer/bs8/fp32/eager/cpu", 1),
                   ("llama:tiny/generate/bs1/seq16+gen8/fp32/eager/cpu/poisson@1rps", 1)]
    one = parse_suite(BASE + '[[matrix]]\nmodels = ["mlp:tiny"]\nscenarios = ["offline"]\n')
    assert one.cases[0].case_id == "mlp:tiny/infer/bs1/fp32/eager/cpu/offline"  # 1 keeps case ids


@pytest.mark.parametrize("settings_extra,block_extra,needle", [
    ("instances = 0\n", 'scenarios = ["offline"]', "settings.instances"),
    ("instances = 1.5\n", 'scenarios = ["offline"]', "settings.instances"),
    ('instances = "2"\n', 'scenarios = ["offline"]', "settings.instances"),
    ("instances = 65\n", 'scenarios = ["offline"]', "settings.instances"),
    ("", 'scenarios = ["offline"]\ninstances = 0', "matrix[0].instances"),
    ("", "instances = 2", "matrix[0].instances: applies to LoadGen scenarios"),
    ("instances = 2\n", "", "settings.instances: applies to LoadGen scenarios"),
])
def test_bad_instances_are_one_line_naming_the_field(settings_extra, block_extra, needle):
    with pytest.raises(ConfigError) as e:
        parse_suite(BASE + settings_extra + '[[matrix]]\nmodels = ["mlp:tiny"]\n' + block_extra + "\n", "f.toml")
    msg = str(e.value)
    assert msg.startswith("f.toml: ") and "\n" not in msg and needle in msg, msg


# ------------------------------------------------------------------ the report
def test_instances_keep_their_own_curve_and_meet_the_fixed_batch_case(tmp_path):
    from test_serving import point, served_case, write_run

    from hwbench.analysis.serving import capacity_vs_fixed, fixed_case_of, workload_of
    from hwbench.records import CaseIdentity, CaseResult, Facts, Measurement
    from hwbench.report.sections.serving import serving_view

    base = "mlp:tiny/infer/bs8/fp32/eager/cpu"
    assert workload_of(base + "/inst2/server@100qps") == base + "/inst2"
    assert fixed_case_of(base + "/inst2") == base and fixed_case_of(base) == base
    fixed = CaseResult(
        case_id=base, case=CaseIdentity(model="mlp:tiny", mode="infer", batch_size=8, precision="fp32",
                                        backend="eager", device="cpu"), status="ok", device_name="CPU-X",
        measurement=Measurement(raw_times_s=[[0.008] * 10], first_iter_s=0.008, warmup_s=0.01, measured_s=0.08),
        facts=Facts(params=10, flops_per_sample=100.0))  # 1000 samples/s
    one = served_case(base + "/offline", "offline", [point(None, [1.0] * 1600)])  # 800 samples/s
    two = served_case(base + "/inst2/offline", "offline", [point(None, [1.0] * 1200, instance_batches=[70, 80])])
    two = two.model_copy(update={"case": two.case.model_copy(update={"instances": 2})})
    df = load_results(write_run(tmp_path, [fixed, one, two]))
    assert sorted(df["instances"].tolist()) == [1, 1, 2]
    g = capacity_vs_fixed(df).set_index("workload")
    assert g.loc[base + "/inst2", "fixed_batch_samples_per_s"] == pytest.approx(1000.0)
    assert g.loc[base + "/inst2", "offline_samples_per_s"] == pytest.approx(600.0)
    assert g.loc[base, "offline_samples_per_s"] == pytest.approx(800.0)
    (title, frame, cols), *_ = serving_view(df)
    assert ("instances", "inst") in cols  # it varies: a column
    (title, frame, cols), *_ = serving_view(df[df["instances"] == 1])
    assert ("instances", "inst") not in cols
