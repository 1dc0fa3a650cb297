"""Multi-node runs (``hwbench run --rdzv-endpoint ... --nnodes N --node-rank R``): the pure
join of the nodes' parts (hwbench.merge), the options' one-line errors, the planner's
skips, and real runs of two "nodes" on localhost (two hwbench processes, each starting
torch's elastic agent per case, meeting at a c10d rendezvous on 127.0.0.1): both parts
join into one record and one report; a node that stops takes the other with it; nodes
that planned different cases refuse to start."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hwbench
from hwbench.case import Case
from hwbench.errors import UserError
from hwbench.merge import join_parts, merge_parts
from hwbench.parallel.nodes import Nodes
from hwbench.records import (CaseIdentity, CaseResult, Energy, Environment, Facts, Flag, Measurement, NodeRole,
                             RunRecord, SamplerResult, Segment, SuiteRef)
from hwbench.results import read_many, read_record
from conftest import ROOT, hwbench as cli, write_suite

T0 = "2026-11-26T00:00:00+00:00"
IDENT = CaseIdentity(model="encoder:tiny", mode="train", batch_size=4, precision="fp32", backend="eager",
                     device="cpu", parallelism="ddp", world_size=4)
CID = "encoder:tiny/train/bs4/seq32/fp32/eager/cpu/ddp4"


def case(times, ranks, energy_j=10.0, status="ok", reason="", rss=None, source="rapl", flags=()):
    ok = status == "ok"
    return CaseResult(
        case_id=CID, case=IDENT, status=status, reason=reason, device_name="CPU X",
        measurement=Measurement(raw_times_s=times, first_iter_s=1.0 + ranks[0], warmup_s=0.5, measured_s=2.0)
        if ok else None,
        facts=Facts(params=100, flops_per_sample=1e6, ranks=ranks, global_batch_size=16,
                    rank_host_rss_peak_bytes=rss or [1000 * (r + 1) for r in ranks], host_rss_peak_bytes=9000,
                    comm_s_per_step=0.01 * (ranks[0] + 1), comm_bytes_per_step=1e6) if ok else None,
        energy=Energy(energy_j=energy_j, energy_source=source, energy_window_s=2.0 + ranks[0] * 0.1,
                      idle_power_w=1.0) if ok else None,
        collectors={"host": SamplerResult(n_samples=3, summary={"cpu_util_pct_mean": 50.0})},
        flags=list(flags),
    )


def part(node_rank, cases, nnodes=2, job="job1", status="complete", suite_hash="h", updated=None):
    seg = Segment(index=0, started=T0, environment=Environment(hostname=f"host{node_rank}"))
    return RunRecord(run_id=f"run{node_rank}{updated or ''}", created=T0, updated=updated, status=status,
                     suite=SuiteRef(name="s", path="s.toml", hash=suite_hash, resolved={}), segments=[seg],
                     cases=cases, node=NodeRole(job_id=job, nnodes=nnodes, node_rank=node_rank,
                                                rdzv_endpoint="h:29500"))


# ------------------------------------------------------------------ the pure join
def test_parts_join_into_the_slowest_step_summed_energy_and_every_rank():
    a = part(0, [case([[1.0, 2.0, 3.0], [1.0, 1.0]], [0, 1], energy_j=10.0)])
    b = part(1, [case([[1.5, 1.0, 3.5, 9.0], [0.5, 2.0]], [2, 3], energy_j=12.5, source="estimated",
                      flags=[Flag(flag="noisy", detail="x")])])
    merged, notes = merge_parts([(Path("b.json"), b), (Path("a.json"), a)])
    assert notes == [] and merged.node is None and merged.status == "complete"
    assert [n.node_rank for n in merged.nodes] == [0, 1] and merged.nodes[1].hostname == "host1"
    assert merged.run_id == "run0" and merged.environment.hostname == "host0"
    (c,) = merged.cases
    # step by step the slowest node; a node with more steps is cut to the common count
    assert c.measurement.raw_times_s == [[1.5, 2.0, 3.5], [1.0, 2.0]]
    assert c.measurement.first_iter_s == 3.0  # the slower node's
    assert c.facts.ranks == [0, 1, 2, 3] and c.facts.rank_host_rss_peak_bytes == [1000, 2000, 3000, 4000]
    assert c.facts.comm_s_per_step == pytest.approx(0.03)
    # energy: the sum over the nodes, the weakest source, the longest window
    assert c.energy.energy_j == 22.5 and c.energy.energy_source == "estimated"
    assert c.energy.energy_window_s == pytest.approx(2.2) and c.energy.idle_power_w == 2.0
    assert set(c.collectors) == {"host", "node1/host"}
    assert [(f.flag, f.detail) for f in c.flags] == [("noisy", "node 1: x")]


def test_a_failed_node_fails_the_case_with_every_nodes_reason():
    a = part(0, [case(None, [0, 1], status="failed", reason="rank 0: RuntimeError: Connection closed by peer")])
    b = part(1, [case(None, [2, 3], status="oom", reason="rank 3: out of memory")])
    merged, _ = merge_parts([(Path("a"), a), (Path("b"), b)])
    (c,) = merged.cases
    assert c.status == "oom" and c.measurement is None and c.energy is None
    assert c.reason == "node 1: rank 3: out of memory; node 0: rank 0: RuntimeError: Connection closed by peer"


def test_a_missing_node_is_flagged_and_leaves_no_energy():
    a = part(0, [case([[1.0, 2.0]], [0, 1])], nnodes=3)
    b = part(2, [case([[2.0, 1.0]], [4, 5])], nnodes=3)
    merged, notes = merge_parts([(Path("a"), a), (Path("b"), b)])
    assert merged.status == "partial" and "no part of node 1 of 3" in notes[0]
    (c,) = merged.cases
    assert c.energy is None and c.measurement.raw_times_s == [[2.0, 2.0]]
    assert any(f.flag == "node_parts_missing" and "node 1" in f.detail for f in c.flags)


def test_readers_join_parts_keep_other_runs_and_refuse_parts_that_do_not_belong(tmp_path):
    from hwbench.results import write_atomic

    single = part(0, [case([[1.0]], [0, 1])]).model_copy(update={"node": None, "run_id": "solo"})
    files = {"a.json": part(0, [case([[1.0]], [0, 1])]), "b.json": part(1, [case([[2.0]], [2, 3])]),
             "c.json": single,
             "x0.json": part(0, [case([[1.0]], [0, 1])], job="other"),
             "x1.json": part(1, [case([[1.0]], [2, 3])], job="other", suite_hash="changed")}
    for name, rec in files.items():
        write_atomic(tmp_path / name, rec)
    warnings = []
    got = read_many([tmp_path], warnings.append)
    runs = sorted((p.name, r.run_id, len(r.nodes)) for p, r in got)
    assert runs == [("a.json", "run0", 2), ("c.json", "solo", 0), ("x0.json", "run0", 0), ("x1.json", "run1", 0)]
    assert len(warnings) == 1 and "other: parts not merged" in warnings[0] and "hash" in warnings[0]
    df = hwbench.load_results([tmp_path / "a.json", tmp_path / "b.json"])
    assert len(df) == 1 and df.iloc[0]["latency_ms_p50"] == 2000.0


def test_hwbench_merge_writes_one_file_and_readers_then_leave_the_parts_out(tmp_path):
    from hwbench.results import write_atomic

    write_atomic(tmp_path / "a.json", part(0, [case([[1.0]], [0, 1])]))
    write_atomic(tmp_path / "b.json", part(1, [case([[3.0]], [2, 3])]))
    r = cli("merge", tmp_path, "--out", tmp_path / "merged.json")
    assert r.returncode == 0, r.stderr
    assert "2 of 2 nodes, 1 cases (1 ok), status complete" in r.stdout
    rec = read_record(tmp_path / "merged.json")
    assert rec.node is None and len(rec.nodes) == 2 and rec.cases[0].measurement.raw_times_s == [[3.0]]
    warnings = []
    got = read_many([tmp_path], warnings.append)
    assert [p.name for p, _ in got] == ["merged.json"] and len(warnings) == 2
    again = cli("merge", tmp_path, "--out", tmp_path / "merged.json")
    assert again.returncode == 2 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ options and plan
@pytest.mark.parametrize("args,text", [
    (["--nnodes", "2"], "also needs --rdzv-endpoint"),
    (["--rdzv-endpoint", "127.0.0.1:29500", "--nnodes", "2", "--rdzv-id", "j"], "also give --node-rank"),
    (["--rdzv-endpoint", "127.0.0.1", "--nnodes", "2", "--node-rank", "0", "--rdzv-id", "j"], "HOST:PORT"),
    (["--rdzv-endpoint", "h:1", "--nnodes", "2", "--node-rank", "2", "--rdzv-id", "j"], "must be in 0..1"),
    (["--rdzv-endpoint", "h:1", "--nnodes", "2", "--node-rank", "0", "--rdzv-id", "a/b"], "--rdzv-id"),
])
def test_multi_node_options_give_one_line_errors(tmp_path, args, text):
    s = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer"]\nbatch_sizes=[1]\n')
    env = {k: "" for k in ("SLURM_NNODES", "SLURM_NODEID", "SLURM_JOB_ID")}
    r = cli("run", s, "--out", tmp_path / "o", *args, env=env)
    assert r.returncode == 2 and text in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_multi_node_plan_runs_only_parallel_cases_that_split_over_the_nodes():
    nodes = Nodes(nnodes=2, node_rank=1, endpoint="10.0.0.1:29500", job_id="123")
    assert "single-process case" in nodes.requires(Case("mlp:tiny", "infer", 1, "fp32", "eager", "cpu"))
    odd = Case("encoder:tiny", "train", 4, "fp32", "eager", "cpu", parallelism="ddp", world_size=3)
    assert "does not split evenly over 2 nodes" in nodes.requires(odd)
    assert nodes.requires(Case("encoder:tiny", "train", 4, "fp32", "eager", "cpu", parallelism="ddp",
                               world_size=4)) is None
    auto = Case("encoder:tiny", "train", 0, "fp32", "eager", "cpu", parallelism="ddp", world_size=2)
    assert auto.auto_batch and "each node would search its own limit" in nodes.requires(auto)
    assert nodes.nproc(4) == 2 and nodes.rdzv_id("a") != nodes.rdzv_id("b") and nodes.rdzv_id("a").startswith("123-")
    with pytest.raises(UserError, match="at least 2 nodes"):
        Nodes(nnodes=1, node_rank=0, endpoint="h:1", job_id="j")


def test_slurm_variables_fill_in_what_the_endpoint_leaves_out(tmp_path):
    s = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer"]\nbatch_sizes=[1]\n')
    env = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_ID": "77"}
    r = cli("run", s, "--dry-run", "--rdzv-endpoint", "127.0.0.1:1", env=env)
    assert r.returncode == 0 and "single-process case: a multi-node run (--nnodes 2)" in r.stdout, r.stdout + r.stderr
    plain = cli("run", s, "--dry-run", env=env)  # a plain run under srun stays a one-machine run
    assert plain.returncode == 0 and "multi-node" not in plain.stdout


# ------------------------------------------------------------------ two nodes on localhost
MN_SETTINGS = "min_time_s = 0.05\nmin_iters = 3\nwarmup_iters = 1\ncomm_profile_steps = 1\ntimeout_s = 120"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_nodes(suite, out, port, job, extra=((), ())):
    procs = []
    for rank in range(2):
        cmd = [sys.executable, "-m", "hwbench.cli", "run", str(suite), "--out", str(out), "--nnodes", "2",
               "--node-rank", str(rank), "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", job, *extra[rank]]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True))
    return procs


def _part_files(out):
    """The nodes' results files in node order (their names start with the time each node
    started, which is not the node order)."""
    return sorted(out.glob("*.json"), key=lambda f: read_record(f).node.node_rank)


def _finish(procs, timeout):
    try:
        return [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_two_nodes_on_localhost_run_parallel_cases_together_and_their_parts_join(tmp_path):
    body = ('[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[4]\nthreads=[1]\n'
            'parallelism=["none","ddp","ps"]\nworld_sizes=[2]\n')
    suite = write_suite(tmp_path, body, settings=MN_SETTINGS)
    out = tmp_path / "out"
    procs = _start_nodes(suite, out, _free_port(), "t-join")
    outs = _finish(procs, 300)
    assert [p.returncode for p in procs] == [0, 0], outs
    files = _part_files(out)
    assert [f.name.split("-")[-2] for f in files] == ["node0", "node1"]
    parts = [read_record(f) for f in files]
    for r, rec in enumerate(parts):
        assert rec.node.node_rank == r and rec.node.job_id == "t-join" and rec.status == "complete"
        ok = [c for c in rec.cases if c.status == "ok"]
        assert len(ok) == 2 and all(len(c.facts.ranks) == 1 for c in ok)  # each node holds its own rank
        assert [c.status for c in rec.cases if c.case.parallelism == "none"] == ["skipped"]
    for cid in {c.case_id for c in parts[0].cases if c.status == "ok"}:
        # the rendezvous numbers the nodes' ranks in the order they joined, not by node rank
        held = [next(c for c in p.cases if c.case_id == cid).facts.ranks for p in parts]
        assert sorted(held) == [[0], [1]]
    (path, merged), = read_many([out])
    assert len(merged.nodes) == 2 and merged.status == "complete"
    for c in (c for c in merged.cases if c.status == "ok"):
        assert c.facts.ranks == [0, 1] and len(c.facts.rank_host_rss_peak_bytes) == 2
        mine = [next(x for x in p.cases if x.case_id == c.case_id) for p in parts]
        assert c.energy.energy_j == pytest.approx(sum(m.energy.energy_j for m in mine))
        assert c.measurement.raw_times_s[0][0] == max(m.measurement.raw_times_s[0][0] for m in mine)
        assert "node1/host" in c.collectors
    df = hwbench.load_results(out)
    ok = df[df.status == "ok"]
    assert len(df) == 3 and sorted(ok.parallelism) == ["ddp", "ps"] and (ok.global_batch_size == 8).all()
    rep = cli("report", out)
    runs = [line for line in rep.stdout.splitlines() if line.startswith("  run ")]
    assert rep.returncode == 0 and len(runs) == 1 and "node0" in runs[0], rep.stdout + rep.stderr


def _saved_cases(path) -> int:
    """The cases results file ``path`` holds with its journal merged; 0 while it is
    being replaced or not yet a results file."""
    import warnings

    from hwbench.errors import ResultsError
    from hwbench.results import read_record

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an append in progress is not a torn line
            return len(read_record(path).cases)
    except (ResultsError, OSError, ValueError):
        return 0


def test_a_node_that_stops_takes_the_other_with_it_and_both_parts_stay_readable(tmp_path):
    body = ('[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[4]\nthreads=[1]\n'
            'parallelism=["ddp","ps","fsdp"]\nworld_sizes=[2]\n')
    suite = write_suite(tmp_path, body, settings=MN_SETTINGS.replace("min_time_s = 0.05", "min_time_s = 1.5")
                        .replace("timeout_s = 120", "timeout_s = 300"))
    out = tmp_path / "out"
    procs = _start_nodes(suite, out, _free_port(), "t-stop")
    try:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:  # node 1 saved its first case: stop it during the second
            # the cases a run saved are in its journal until the run ends (hwbench.journal):
            # read the file as every reader does, journal merged
            done = [f for f in out.glob("*node1*.json") if _saved_cases(f)]
            if done:
                break
            time.sleep(0.2)
        assert done, "node 1 finished no case"
        os.kill(procs[1].pid, signal.SIGTERM)
        t_sig = time.monotonic()
        outs = _finish(procs, 120)
        took = time.monotonic() - t_sig
    finally:
        _finish(procs, 1)
    assert [p.returncode for p in procs] == [143, 143], outs
    assert took < 60, took  # not a rendezvous or case timeout (300 s)
    assert "Interrupted (node 1: SIGTERM)" in outs[0][1]
    hint = " ".join(outs[1][1].split())  # the hint wraps at the terminal's width, where the path ends
    assert "--resume" in hint and "--nnodes 2 --node-rank 1 --rdzv-endpoint" in hint
    parts = [read_record(f) for f in _part_files(out)]
    assert [p.status for p in parts] == ["interrupted", "interrupted"]
    (_, merged), = read_many([out])
    assert merged.status == "interrupted" and len(merged.cases) < 3

    # Resume both (each its own part, a fresh rendezvous id). Node 1 "lost" its first case
    # (as if it stopped before saving it): node 0 finished it, but the group needs both
    # nodes' ranks, so both run it again.
    from hwbench.results import write_atomic

    files = _part_files(out)
    n1 = read_record(files[1])
    lost = next(c.case_id for c in n1.cases if c.status == "ok")
    write_atomic(files[1], n1.model_copy(update={"cases": [c for c in n1.cases if c.case_id != lost]}))
    port = _free_port()
    procs = []
    for rank, f in enumerate(files):
        cmd = [sys.executable, "-m", "hwbench.cli", "run", str(suite), "--resume", str(f), "--nnodes", "2",
               "--node-rank", str(rank), "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "t-stop-2"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True))
    outs = _finish(procs, 300)
    assert [p.returncode for p in procs] == [0, 0], outs
    parts = [read_record(f) for f in files]
    for rec in parts:
        assert rec.status == "complete" and len(rec.cases) == 3 and all(c.status == "ok" for c in rec.cases)
        assert [len(s.environment.hostname) > 0 for s in rec.segments] == [True, True]
    lost_0 = next(c for c in parts[0].cases if c.case_id == lost)
    assert lost_0.segment == 1  # measured again by the resume, replacing the first result
    (_, merged), = read_many([out])
    assert merged.status == "complete" and [c.status for c in merged.cases] == ["ok"] * 3


def test_nodes_that_planned_different_cases_refuse_to_run(tmp_path):
    body = ('[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nbatch_sizes=[4]\nthreads=[1]\n'
            'parallelism=["ddp","ps"]\nworld_sizes=[2]\n')
    suite = write_suite(tmp_path, body, settings=MN_SETTINGS.replace("timeout_s = 120", "timeout_s = 300"))
    t0 = time.monotonic()
    procs = _start_nodes(suite, tmp_path / "out", _free_port(), "t-plan", extra=((), ("--filter", "parallelism=ps")))
    outs = _finish(procs, 200)
    assert procs[1].returncode == 2 and "its cases differ from node 0's" in outs[1][1], outs
    assert len(outs[1][1].strip().splitlines()) == 1
    assert procs[0].returncode == 2 and "stopped before the first case: node 1: its cases differ" in outs[0][1], outs
    assert time.monotonic() - t0 < 120


def test_the_html_report_shows_every_nodes_environment_and_the_header_the_node_count(tmp_path):
    from hwbench.report.html import write_html
    from hwbench.results import write_atomic

    write_atomic(tmp_path / "a.json", part(0, [case([[1.0]], [0, 1])]))
    write_atomic(tmp_path / "b.json", part(1, [case([[3.0]], [2, 3])]))
    write_html([tmp_path], tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "seg 0 node 0" in html and "seg 0 node 1" in html and "host1" in html
    df = hwbench.load_results(tmp_path)
    assert df.iloc[0]["nnodes"] == 2 and df.iloc[0]["node_hostnames"] == "host0,host1"
    rep = cli("report", tmp_path)
    assert "· 2 nodes" in rep.stdout, rep.stdout
