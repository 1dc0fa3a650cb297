"""The real CLI in a subprocess: run, report, list, env, dry-run, resume, signals, bad
and hostile input, exit codes."""

import json
import os
import pty
import resource
import select
import signal
import subprocess
import sys
import time

import psutil
import pytest

from hwbench import load_results
from hwbench.results import read_record
from conftest import DATA, ROOT, hwbench, write_suite


def results_file(out_dir):
    files = list(out_dir.glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def test_run_then_report_then_load(tmp_path):
    # a pipe at 80 columns: every case with its numbers, nothing wider than 80
    r = hwbench("run", DATA / "tiny.toml", "--out", tmp_path, env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert "fixed cost per case" in r.stdout and "cases: ok 4" in r.stdout
    # (the results path is never cut: it is there to be copied)
    assert max(len(line) for line in r.stdout.splitlines() if not line.startswith("results: ")) <= 80, r.stdout
    f = results_file(tmp_path)
    rec = read_record(f)
    df = load_results([f])
    from hwbench.report import format as fm

    for row in df.itertuples():
        assert any(fm.duration_ms(row.latency_ms_p50) in line and fm.rate(row.throughput_samples_per_s) in line
                   for line in r.stdout.splitlines()), row.case_id
    flagged = {fl for v in df["quality_flags"] for fl in v if fl != "energy_estimated"}
    assert ("warning:" in r.stdout) == bool(flagged)  # the summary counts every per-case flag raised
    assert all(name in r.stdout for name in flagged)
    assert "warning" not in r.stdout.split("results:")[0].split("\n\n")[0]  # no per-case warnings during the run
    assert rec.status == "complete" and len(rec.cases) == 4
    assert rec.environment.torch_version and rec.environment.cpu_model
    assert rec.suite.resolved["settings"]["min_iters"] == 3

    md = hwbench("report", f, "--format", "markdown")
    assert md.returncode == 0 and md.stdout.count("| mlp:tiny") == 2 and "| p50 |" in md.stdout
    csv = hwbench("report", f, "--format", "csv")
    header = csv.stdout.splitlines()[0].split(",")
    assert {"case_id", "latency_ms_p50", "throughput_samples_per_s"} <= set(header)
    table = hwbench("report", f)
    assert table.returncode == 0 and "encoder/train" in table.stdout and "every case: tiny" in table.stdout
    assert len(df) == 4 and (df["status"] == "ok").all()


def test_a_shipped_suite_runs_by_name(tmp_path):
    r = hwbench("run", "smoke", "--dry-run", "--filter", "mlp:tiny/infer/bs1/fp32*")
    assert r.returncode == 0, r.stderr
    assert "mlp:tiny/infer/bs1/fp32/eager/cpu" in r.stdout and "1 to run" in r.stdout


def test_dry_run_lists_cases_and_groups_skips(tmp_path):
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nprecisions=["fp32","tf32"]\ndevices=["cpu","cuda"]\n')
    r = hwbench("run", p, "--dry-run", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "mlp:tiny/infer/bs1/fp32/eager/cpu" in r.stdout and "run on" in r.stdout
    assert "1 to run, 3 skipped" in r.stdout or "4 to run" in r.stdout  # 4 where a GPU is present
    if "3 skipped" in r.stdout:
        assert "tf32 needs a CUDA GPU" in r.stdout and "e.g. mlp:tiny/infer/bs1/tf32/eager/c" in r.stdout
        assert "skipped: 3 cases, 2 reasons" in r.stdout
    assert "estimated run time: at least" in r.stdout
    assert not list(tmp_path.glob("*.json"))


def test_dry_run_of_a_big_suite_that_cannot_run_here_is_a_short_block():
    r = hwbench("run", "gpu", "--dry-run", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    if "0 to run" in lines[0]:  # a machine without CUDA
        assert len(lines) < 15 and "nothing to run on this machine" in r.stdout and "e.g." in r.stdout


def test_list_and_env():
    m = hwbench("list", "models", env={"COLUMNS": "200"})
    assert m.returncode == 0 and "decoder:xl" in m.stdout
    s = hwbench("list", "suites", env={"COLUMNS": "200"})
    assert s.returncode == 0 and "smoke" in s.stdout and "precision" in s.stdout
    e = hwbench("env", "--json")
    fp = json.loads(e.stdout)
    assert fp["cpu_cores_logical"] >= 1 and "torch_version" in fp and "cpu_freq_max_source" in fp


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "nope.toml"], "nope.toml: no such suite file (shipped suites: comm, compile"),
        (["report", "missing.json"], "missing.json: no such results file"),
        (["run", "suites/smoke.toml", "--filter", "zzz=1"], "unknown field 'zzz'"),
        (["run", "suites/smoke.toml", "--resume", "missing.json"], "missing.json: no such results file"),
        (["run", "suites/smoke.toml", "--resume", "x.json", "--out", "d"], "--out and --resume exclude each other"),
        (["report", "x.json", "--format", "xml"], "Invalid value for '--format'"),
        (["run"], "Missing argument 'SUITE'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["list", "gpus"], "'gpus' is not one of 'models', 'suites'"),
        (["run", "smoke", "--grace-s", "-1"], "--grace-s"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    r = hwbench(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_user_errors_answer_before_torch_is_imported(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[suite]\nname="x"\n[[matrix]]\nmodels=["mlp:tiny"]\nprecisions=["fp33"]\n')
    good = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\n')
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "hwbench-results", "schema_version": 3}')
    probe = ("import sys\nfrom hwbench.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
             "    print('exit', e.code, 'torch' in sys.modules)\n")
    for args in (["run", str(bad)], ["run", str(good), "--filter", "x=1"], ["run", str(good), "--resume", str(junk)],
                 ["report", str(junk)]):
        r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.stdout.strip() == "exit 2 False", (args, r.stdout, r.stderr)


def test_bad_suite_is_one_line_exit_2(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[suite]\nname="x"\n[[matrix]]\nmodels=["gpt:huge"]\n')
    r = hwbench("run", p)
    assert r.returncode == 2 and "bad.toml: matrix[0].models[0]: unknown model 'gpt:huge'" in r.stderr
    assert r.stderr.count("\n") == 1


def test_nothing_can_run_is_exit_2_with_grouped_reasons(tmp_path):
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny","cnn:tiny"]\nbatch_sizes=[1,2,4]\ndevices=["cuda:7"]\n')
    r = hwbench("run", p, "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "nothing can run on this machine: device cuda:7" in r.stderr and "(6 cases, e.g." in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_failed_case_is_exit_3(tmp_path):
    r = hwbench("run", DATA / "tiny.toml", "--out", tmp_path, env={"HWBENCH_INJECT_FAULT": "mlp:tiny/infer*=raise"})
    assert r.returncode == 3, r.stderr
    assert "failed 1" in r.stdout and "injected failure" in r.stdout


def test_bad_fault_injection_is_exit_2():
    r = hwbench("run", DATA / "tiny.toml", "--dry-run", env={"HWBENCH_INJECT_FAULT": "oops"})
    assert r.returncode == 0  # a dry run runs nothing
    r = hwbench("run", DATA / "tiny.toml", "--out", "/tmp/never", env={"HWBENCH_INJECT_FAULT": "oops"})
    assert r.returncode == 2 and "HWBENCH_INJECT_FAULT: expected" in r.stderr


def test_truncated_results_file_is_one_line_exit_2(tmp_path):
    assert hwbench("run", DATA / "tiny.toml", "--out", tmp_path).returncode == 0
    f = results_file(tmp_path)
    f.write_text(f.read_text()[:300])
    r = hwbench("report", f)
    assert r.returncode == 2 and "truncated results file" in r.stderr and "Traceback" not in r.stderr


def test_hostile_names_stay_inside_out_and_never_reach_the_terminal_raw(tmp_path):
    p = tmp_path / "evil.toml"
    p.write_text('[suite]\nname = "../../x\\u001b[31m\\u0000\\n[bold]evil[/bold]"\n[settings]\nidle_baseline_s = 0\n'
                 'min_time_s = 0.02\nmin_iters = 2\nwarmup_iters = 1\n[[matrix]]\nmodels = ["mlp:tiny"]\n')
    out = tmp_path / "a" / "b"
    r = hwbench("run", p, "--out", out, env={"HWBENCH_INJECT_FAULT": "*=raise"})
    assert r.returncode == 3, r.stderr
    files = [q for q in tmp_path.rglob("*.json")]
    assert len(files) == 1 and files[0].parent == out, files
    assert files[0].name.startswith("x-31m-bold-evil-bold-")
    assert "\x1b" not in r.stdout + r.stderr and "\x00" not in r.stdout + r.stderr
    assert "[bold]evil[/bold]" in r.stdout  # shown as written, not parsed as markup
    assert f"results: {files[0]}" in r.stdout.replace("\n", "")


def test_failure_reasons_with_brackets_print_as_they_are(tmp_path):
    body = '[[matrix]]\nmodels=["mlp:large"]\nmodes=["train"]\n'
    p = write_suite(tmp_path, body, settings="memory_limit_gb = 2")
    r = hwbench("run", p, "--out", tmp_path / "o", env={"COLUMNS": "400"})
    reason = read_record(results_file(tmp_path / "o")).cases[0].reason
    assert r.returncode == 3 and "[" in reason, reason
    bracketed = reason[reason.index("["):reason.index("]") + 1]
    assert bracketed in r.stdout  # e.g. torch's "[enforce fail at alloc_cpu.cpp:...]"


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    # 6 cases of ~0.3 s each; kill the runner hard once two are in the file.
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[1,2,4]\n', settings="min_time_s = 0.3")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hwbench.cli", "run", str(p), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    done_before = []
    descendants = set()
    while time.time() < deadline:
        try:
            descendants |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            break
        files = list(out.glob("*.json")) if out.exists() else []
        if files:
            done_before = read_record(files[0]).cases  # valid at every instant
            if len(done_before) >= 2:
                break
        time.sleep(0.02)
    descendants |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    f = results_file(out)
    before = read_record(f)
    assert before.status == "running" and len(before.cases) >= 2
    # neither the forkserver nor a worker outlives the runner
    assert len(descendants) >= 2  # the forkserver and at least one worker were seen
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in descendants if psutil.pid_exists(p)], timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    r = hwbench("run", p, "--resume", f)  # the dead run's lock went with it
    assert r.returncode == 0, r.stderr
    after = read_record(f)
    ids = [c.case_id for c in after.cases]
    assert len(ids) == len(set(ids)) == 6
    kept = {c.case_id: c for c in before.cases}
    assert all(c == kept[c.case_id] for c in after.cases if c.case_id in kept)
    assert after.status == "complete" and len(after.segments) == 2
    assert {c.segment for c in after.cases} == {0, 1}
    again = hwbench("run", p, "--resume", f)
    assert again.returncode == 0 and "nothing to resume" in again.stdout and read_record(f) == after


def start_and_wait_for_first_case(tmp_path, min_time_s: float, *args, tty=False):
    """Start a 6-case run in a subprocess; return once its first case is in the file."""
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[1,2,4]\n',
                    settings=f"min_time_s = {min_time_s}")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hwbench.cli", "run", str(p), "--out", str(out), *args]
    if tty:  # a real terminal, to see what the progress display does to it
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm"})
        os.close(slave)
        proc.master = master
    else:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and list(out.glob("*.json")) and read_record(results_file(out)).cases):
        time.sleep(0.05)
    return proc, out


def read_pty(proc, timeout=60) -> str:
    chunks, end = [], time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([proc.master], [], [], 0.1)
        if r:
            try:
                data = os.read(proc.master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(proc.master)
    return b"".join(chunks).decode(errors="replace")


def test_ctrl_c_finishes_current_case_and_prints_resume_hint(tmp_path):
    proc, out = start_and_wait_for_first_case(tmp_path, 0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "--resume" in stdout + stderr and "Traceback" not in stderr
    rec = read_record(results_file(out))
    assert rec.status == "interrupted" and 1 <= len(rec.cases) < 6
    assert all(c.status == "ok" for c in rec.cases)  # the current case was finished, not lost


def test_second_ctrl_c_abandons_the_running_case_and_still_saves(tmp_path):
    proc, out = start_and_wait_for_first_case(tmp_path, 10)
    time.sleep(0.5)  # well inside the second case's 10 s
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    # it did not wait for the 10 s case to finish: only the first case is in the file
    # (the record says so at any load; a wall-clock bound would not)
    assert proc.returncode == 130 and "Traceback" not in stderr
    rec = read_record(results_file(out))
    assert rec.status == "interrupted" and len(rec.cases) == 1 and rec.cases[0].status == "ok"


def test_sigterm_lets_the_case_finish_saves_and_restores_the_terminal(tmp_path):
    proc, out = start_and_wait_for_first_case(tmp_path, 0.5, tty=True)
    proc.send_signal(signal.SIGTERM)
    text = read_pty(proc)
    assert proc.returncode == 143, text
    assert "SIGTERM" in text and "--resume" in text and "Traceback" not in text
    # the progress display hid the cursor; it is shown again after the last hide
    assert text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l") >= 0
    rec = read_record(results_file(out))
    assert rec.status == "interrupted" and 1 <= len(rec.cases) < 6 and all(c.status == "ok" for c in rec.cases)


def test_sigterm_abandons_a_case_that_outlives_the_grace_period(tmp_path):
    proc, out = start_and_wait_for_first_case(tmp_path, 10, "--grace-s", "0.5")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr  # abandoned, not finished: one case in the file (below)
    rec = read_record(results_file(out))
    assert rec.status == "interrupted" and [c.status for c in rec.cases] == ["ok"]


def _file_limit(nbytes: int):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def test_a_write_error_keeps_a_valid_file_and_says_how_to_resume(tmp_path):
    p = write_suite(tmp_path, '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[1,2,4,8,16]\n',
                    settings="min_time_s = 0.3\nsample_interval_s = 0.01\nmax_iters = 50")
    # how large the file grows on this machine: a full run first, then a limit at about
    # 45 % of that, so some cases are saved and a later write fails like a full disk
    full = hwbench("run", p, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    size = results_file(tmp_path / "full").stat().st_size
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "hwbench.cli", "run", str(p), "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, preexec_fn=_file_limit(int(size * 0.45)))
    assert r.returncode == 2, (r.stdout, r.stderr)
    said = " ".join(r.stderr.split())  # the message is wrapped to the terminal's width
    assert "cannot write the results file" in said and "--resume" in said and "Traceback" not in said
    rec = read_record(results_file(out))  # the last good version
    assert 1 <= len(rec.cases) < 10 and rec.status == "running"
    assert not [q for q in out.iterdir() if q.name.endswith(".tmp")]
    # and the run can be finished where there is room again
    done = hwbench("run", p, "--resume", results_file(out))
    assert done.returncode == 0, done.stderr
    assert len(read_record(results_file(out)).cases) == 10


def test_unwritable_output_folder_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = hwbench("run", DATA / "tiny.toml", "--out", blocker / "sub")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
