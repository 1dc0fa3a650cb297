"""Parallel cases (hwbench.parallel): the matrix dimensions, capability checks, the pure
merge and scaling functions, and real torchrun groups on CPU (gloo): every strategy at
world sizes 1 and 2, ddp / fsdp / tp / pp with the compile backend, a rank that dies, a
rank that hangs, and two elastic agents meeting at a c10d rendezvous on localhost."""

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwbench import launch
from hwbench.analysis.derive import scaling_efficiency
from hwbench.case import Case
from hwbench.errors import ConfigError
from hwbench.parallel import mesh, pp, report, requires
from hwbench.spec import Settings, parse_suite
from conftest import ROOT, run_suite

FAST = "min_time_s = 0.02\nmin_iters = 3\nwarmup_iters = 1\ncomm_profile_steps = 1\ntimeout_s = 120"


def suite(body, settings=""):
    return parse_suite(f'[suite]\nname = "t"\n[settings]\n{settings}\n{body}')


# ------------------------------------------------------------------ the matrix
def test_parallel_dimensions_expand_and_leave_single_process_ids_alone():
    s = suite('[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nparallelism=["none","ddp","pp"]\n'
              'world_sizes=[1,2]\n')
    ids = [c.case_id for c in s.cases]
    assert ids == ["encoder:tiny/train/bs1/seq32/fp32/eager/cpu", *(f"encoder:tiny/train/bs1/seq32/fp32/eager/cpu/{p}"
                   for p in ("ddp1", "ddp2", "pp1", "pp2"))]
    assert Case("mlp:tiny", "infer", 1, "fp32", "eager", "cpu").case_id == "mlp:tiny/infer/bs1/fp32/eager/cpu"
    assert {(c.parallelism, c.world_size) for c in s.cases} == {("none", 1), ("ddp", 1), ("ddp", 2), ("pp", 1), ("pp", 2)}


@pytest.mark.parametrize("body,where", [
    ('models=["encoder:tiny"]\nmodes=["train"]\nworld_sizes=[2]', "world_sizes"),
    ('models=["encoder:tiny"]\nmodes=["infer"]\nparallelism=["ddp"]', "parallelism"),
    ('models=["encoder:tiny"]\nmodes=["train"]\nparallelism=["zero"]', "parallelism"),
    ('models=["encoder:tiny"]\nmodes=["train"]\nparallelism=["ddp"]\nworld_sizes=[0]', "world_sizes"),
])
def test_contradictory_parallel_blocks_are_config_errors(body, where):
    with pytest.raises(ConfigError, match=where):
        suite(f"[[matrix]]\n{body}\n")


def test_capability_checks_give_precise_reasons():
    st = Settings()
    c = lambda model, par, ws, bs=1: Case(model, "train", bs, "fp32", "eager", "cpu", parallelism=par, world_size=ws)  # noqa: E731
    assert requires(c("encoder:tiny", "tp", 2), "cpu", 1, st) is None
    assert "does not divide" in requires(c("encoder:tiny", "tp", 4), "cpu", 1, st)  # 2 heads
    assert "no tensor-parallel plan for mlp" in requires(c("mlp:tiny", "tp", 2), "cpu", 1, st)
    assert "too few for 4 stages" in requires(c("encoder:tiny", "pp", 4), "cpu", 1, st)  # 2 layers
    assert "tied" in requires(c("decoder:tiny", "pp", 2), "cpu", 1, st)
    assert "microbatches" in requires(c("encoder:tiny", "pp", 1, bs=3), "cpu", 1, st)
    assert "needs 2 CUDA GPUs" in requires(c("encoder:tiny", "ddp", 2), "cuda", 1, st)
    strong = Settings(scaling="strong")
    assert "does not divide over 2 ranks" in requires(c("encoder:tiny", "ddp", 2, bs=3), "cpu", 1, strong)
    for par in ("ddp", "fsdp", "tp", "pp", "ps"):  # every strategy takes the compile backend
        assert requires(dataclasses.replace(c("encoder:tiny", par, 2), backend="compile"), "cpu", 1, st) is None
        graphs = requires(dataclasses.replace(c("encoder:tiny", par, 2), backend="cudagraphs"), "cuda", 2, st)
        assert graphs.startswith(f"{par}: runs the eager / compile backends, not 'cudagraphs'") and "CUDA-graph" in graphs
    pruned = requires(dataclasses.replace(c("encoder:tiny", "ddp", 2), variant="prune:0.5"), "cpu", 1, st)
    assert pruned.startswith("ddp: parallel cases take no variant (got 'prune:0.5'): ")


def test_batches_pipeline_split_and_slowest_rank():
    assert mesh.batches("ddp", 4, 2, "weak") == (4, 8)
    assert mesh.batches("ddp", 4, 2, "strong") == (2, 4)
    assert mesh.batches("tp", 4, 2, "weak") == (8, 8)
    assert pp.split(5, 2) == [(0, 3), (3, 5)]
    r = lambda rank, t: report.RankReport(rank=rank, pid=1, status="ok", raw_times_s=t)  # noqa: E731
    assert report.slowest([r(0, [[1.0, 5.0, 2.0]]), r(1, [[3.0, 1.0, 2.5]])]) == [[3.0, 5.0, 2.5]]


def test_scaling_efficiency_is_against_the_same_case_at_world_size_1():
    base = {"hostname": "h", "suite": "s", "scaling": "weak", "status": "ok", "run_id": "r", "model": "m",
            "parallelism": "ddp"}
    rows = [{**base, "world_size": 1, "throughput_samples_per_s": 100.0},
            {**base, "world_size": 2, "throughput_samples_per_s": 150.0},
            {**base, "parallelism": "ps", "world_size": 2, "throughput_samples_per_s": 150.0}]
    scaling_efficiency(rows)
    assert rows[0]["scaling_efficiency"] == 1.0 and rows[1]["scaling_efficiency"] == 0.75
    assert rows[2]["scaling_efficiency"] is None  # no ps case at world size 1


def test_fault_injection_takes_a_rank_selector():
    assert launch.parse_fault("enc*@rank1=segfault") == ("enc*", "segfault", 1)
    assert launch.parse_fault("enc*=raise") == ("enc*", "raise")


# ------------------------------------------------------------------ real groups
BAR = '[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[4]\n' \
      'parallelism=["ddp","fsdp","tp","pp","ps"]\nworld_sizes=[1,2]\n'


def test_every_strategy_runs_at_world_sizes_1_and_2_with_scaling_efficiency(tmp_path):
    import hwbench

    rows, out = run_suite(tmp_path, BAR, settings=FAST)
    assert out.exit_code == 0, [(r["case_id"], r["reason"]) for r in rows.values() if r["status"] != "ok"]
    assert len(rows) == 10 and all(r["status"] == "ok" for r in rows.values())
    df = hwbench.load_results(out.path)
    assert {"parallelism", "world_size", "scaling_efficiency", "comm_fraction"} <= set(df.columns)
    two = df[df.world_size == 2]
    assert len(two) == 5 and two.scaling_efficiency.notna().all() and (two.scaling_efficiency > 0).all()
    assert (two.global_batch_size == 8).all()
    assert (two.comm_bytes_per_step > 0).all() and two.comm_fraction.between(0, 1).all()
    ddp2 = out.record.cases[[c.case_id for c in out.record.cases].index(two[two.parallelism == "ddp"].case_id.iloc[0])]
    assert len(ddp2.facts.rank_host_rss_peak_bytes) == 2


def test_compiled_strategies_compile_in_the_first_step_and_time_compiled_steps(tmp_path):
    """backend "compile": ddp (compiled module under DDP), fsdp (blocks compiled, then
    sharded), tp (compiled after parallelize_module) and pp (stage modules compiled) in
    real groups of 2. The first step holds the compilation; the timed steps do not."""
    body = '[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[4]\nbackends=["compile"]\n' \
           'parallelism=["ddp","fsdp","tp","pp"]\nworld_sizes=[2]\n'
    rows, out = run_suite(tmp_path, body, settings=FAST.replace("timeout_s = 120", "timeout_s = 300"))
    assert out.exit_code == 0, [(r["case_id"], r["reason"]) for r in rows.values() if r["status"] != "ok"]
    assert sorted(r["parallelism"] for r in rows.values()) == ["ddp", "fsdp", "pp", "tp"]
    for r in rows.values():
        assert r["status"] == "ok" and r["backend"] == "compile" and r["world_size"] == 2
        median_ms = r["latency_ms_p50"]
        assert math.isfinite(median_ms) and median_ms > 0 and math.isfinite(r["throughput_samples_per_s"])
        # dynamo, AOTAutograd and inductor run in the first step (even from a warm cache:
        # > 1 s here, against tens of ms per compiled step)
        assert r["first_iter_ms"] > 10 * median_ms and r["compile_s"] == pytest.approx(r["first_iter_ms"] / 1e3), \
            r["case_id"]  # (ms -> s is not exact in floating point: 35.281829123000084 != 35281.82912300008 / 1e3)


def _gone(pids):
    return not any(launch.rank_alive(p) or _running(p) for p in pids)


def _running(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@pytest.mark.parametrize("kind,status,text", [
    ("segfault", "failed", "rank 1: rank process killed by signal SIGSEGV"),
    ("raise", "failed", "rank 1: RuntimeError: injected failure"),
])
def test_a_rank_that_dies_fails_the_case_with_its_reason_and_no_process_survives(tmp_path, kind, status, text):
    case = Case("encoder:tiny", "train", 2, "fp32", "eager", "cpu", parallelism="ddp", world_size=2)
    st = Settings(min_time_s=0.02, min_iters=3, warmup_iters=1, comm_profile_steps=0)
    run = launch.run_group(case, st, device_kind="cpu", world_size=2, threads=1, memory_limit_bytes=None,
                           fault={"kind": kind, "rank": 1}, timeout_s=120, job_dir=tmp_path / "job")
    assert run.status == status and text in run.reason, run.reason
    assert len(run.pids) == 3 and _gone(run.pids)  # the agent and both ranks


def test_a_hung_rank_times_out_and_the_whole_group_is_killed(tmp_path):
    case = Case("encoder:tiny", "train", 2, "fp32", "eager", "cpu", parallelism="ps", world_size=2)
    st = Settings(min_time_s=0.02, min_iters=3, warmup_iters=1, timeout_s=15)
    run = launch.run_group(case, st, device_kind="cpu", world_size=2, threads=1, memory_limit_bytes=None,
                           fault={"kind": "hang", "rank": 1}, timeout_s=15, job_dir=tmp_path / "job")
    assert run.status == "timeout" and len(run.pids) == 3 and _gone(run.pids)


def test_in_a_suite_a_killed_rank_fails_its_case_and_the_suite_goes_on(tmp_path):
    body = '[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[2]\nparallelism=["none","ddp"]\n' \
           'world_sizes=[2]\n'
    rows, out = run_suite(tmp_path, body, settings=FAST, fault="*ddp2@rank1=segfault")
    by_par = {r["parallelism"]: r for r in rows.values()}
    assert by_par["ddp"]["status"] == "failed" and "rank 1" in by_par["ddp"]["reason"]
    assert "SIGSEGV" in by_par["ddp"]["reason"]
    assert by_par["none"]["status"] == "ok" and out.exit_code == 3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_elastic_agents_on_localhost_meet_at_a_c10d_rendezvous_and_their_parts_merge(tmp_path):
    """Two "nodes": two torchrun agents (--nnodes 2, one rank each), c10d rendezvous on
    127.0.0.1; each writes its rank's report into its own folder; the parts merge."""
    case = Case("encoder:tiny", "train", 2, "fp32", "eager", "cpu", parallelism="ddp", world_size=2)
    st = Settings(min_time_s=0.02, min_iters=3, warmup_iters=1, comm_profile_steps=1)
    job = {"case": case.to_dict(), "settings": st.model_dump(mode="json"), "device_kind": "cpu", "threads": 1,
           "memory_limit_bytes": None, "fault": None}
    port = _free_port()
    procs, dirs = [], []
    for node in range(2):
        d = tmp_path / f"node{node}"
        d.mkdir()
        (d / "job.json").write_text(json.dumps(job))
        dirs.append(d)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "hwbench-test",
               "--max-restarts", "0", "-m", "hwbench.parallel.rank", str(d)]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    try:
        outs = [p.communicate(timeout=180)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
    assert all(p.returncode == 0 for p in procs), outs
    parts = {}
    for d in dirs:
        parts.update(report.read_reports(d))
    assert sorted(parts) == [0, 1] and all(r.status == "ok" for r in parts.values())
    m, facts, _ = report.merge(parts)
    assert m.raw_times_s and all(t > 0 for t in m.raw_times_s[0]) and facts.global_batch_size == 4
    assert facts.ranks == [0, 1]


def test_compilations_inside_the_timed_window_are_flagged():
    ok = dict(status="ok", pid=1, raw_times_s=[[0.1]])
    reps = {0: report.RankReport(rank=0, compiles_in_window=0, **ok),
            1: report.RankReport(rank=1, compiles_in_window=2, **ok)}
    (flag,) = report.window_flags(reps)
    assert flag.flag == "compiled_in_window" and "rank 1: 2" in flag.detail and "rank 0" not in flag.detail
    assert report.window_flags({0: reps[0]}) == []
