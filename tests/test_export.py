"""``hwbench export`` (hwbench.export): the Prometheus text file read back by
prometheus_client's own parser, label escaping, the newest run winning, a Pushgateway
push to a local HTTP server, one-line errors for unwritable or unreachable targets, and
the payload sent to MLflow and W&B."""

import http.server
import math
import socket
import threading

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hwbench.analysis.derive import load_results
from hwbench.export import prometheus, tracking
from conftest import ROOT

EXAMPLES = ROOT / "results" / "examples"


def cli(*args):
    from click.testing import CliRunner

    from hwbench.cli import cli as group

    r = CliRunner().invoke(group, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def samples(text: str) -> dict:
    """(metric name, frozenset of labels) -> value, from prometheus_client's parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_the_textfile_parses_with_a_latency_for_every_ok_case(tmp_path):
    out = tmp_path / "hwbench.prom"
    rc, _, err = cli("export", EXAMPLES, "--to", "prometheus", out)
    assert rc == 0, err
    text = out.read_text()
    assert "# HELP hwbench_latency_seconds" in text and "# TYPE hwbench_latency_seconds summary" in text
    got = samples(text)
    df = load_results([EXAMPLES])
    ok = df[df["status"] == "ok"]
    assert len(ok)
    for r in ok.to_dict("records"):
        key = frozenset({"case": r["case_id"], "device": r["device_name"], "host": r["hostname"], "suite": r["suite"],
                         "model": r["model"], "mode": r["mode"], "precision": r["precision"],
                         "backend": r["backend"], "batch_size": str(r["batch_size"]), "quantile": "0.5"}.items())
        assert got[("hwbench_latency_seconds", key)] == pytest.approx(r["latency_ms_p50"] / 1e3)
    names = {n for n, _ in got}
    assert {"hwbench_throughput_samples_per_second", "hwbench_energy_per_sample_joules", "hwbench_power_watts",
            "hwbench_run_info", "hwbench_cases"} <= names


def frame(rows):
    base = {"status": "ok", "device_name": "Dev", "hostname": "h", "suite": "s", "model": "m:t", "mode": "infer",
            "precision": "fp32", "backend": "eager", "batch_size": 1, "latency_ms_p90": None, "latency_ms_p99": None,
            "iterations": 10, "latency_ms_mean": 2.0, "throughput_samples_per_s": 500.0, "energy_source": "rapl",
            "hwbench_version": "0"}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["created"] = pd.to_datetime(df["created"], utc=True)
    return df


def test_label_values_are_escaped_and_the_newest_run_wins():
    odd = 'we"ird\\case\nid'
    df = frame([{"case_id": odd, "run_id": "old", "created": "2026-01-01", "latency_ms_p50": 1.0},
                {"case_id": odd, "run_id": "new", "created": "2026-02-01", "latency_ms_p50": 3.0},
                {"case_id": "other", "run_id": "old", "created": "2026-01-01", "latency_ms_p50": 5.0,
                 "status": "failed"}])
    text = prometheus.text(df)
    assert '\\"' in text and "\\n" in text  # escaped, and the parser gives the original back
    lat = {dict(k)["case"]: v for (n, k), v in samples(text).items()
           if n == "hwbench_latency_seconds" and dict(k).get("quantile") == "0.5"}
    assert lat == {odd: pytest.approx(3.0e-3)}  # the newer run's; a failed case has none
    got = samples(text)
    assert got[("hwbench_latency_seconds_count", frozenset(k for k in next(
        k for (n, k) in got if n == "hwbench_latency_seconds_count")))] == 10
    status = {dict(k)["status"]: v for (n, k), v in got.items() if n == "hwbench_cases"}
    assert status == {"ok": 1.0}  # the newest run of (s, h) has one ok case


class _Gateway(http.server.BaseHTTPRequestHandler):
    got: list = []

    def do_PUT(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Gateway.got.append((self.path, body.decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_pushgateway_push_to_a_local_server_and_an_unreachable_one():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Gateway)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        _Gateway.got = []
        rc, _, err = cli("export", EXAMPLES / "smoke-cpu-amd-epyc-2cores.json", "--to", "pushgateway",
                         f"http://127.0.0.1:{server.server_port}")
        assert rc == 0, err
        (path, body), = _Gateway.got
        assert path == "/metrics/job/hwbench/instance/vm"
        assert any(n == "hwbench_latency_seconds" for n, _ in samples(body))
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, _, err = cli("export", EXAMPLES / "smoke-cpu-amd-epyc-2cores.json", "--to", "pushgateway",
                     f"http://127.0.0.1:{port}")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "cannot push" in err


def test_an_unwritable_file_is_one_line_and_nothing_is_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, _, err = cli("export", EXAMPLES, "--to", "prometheus", blocker / "x.prom")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--to prometheus" in err
    rc, _, err = cli("export", EXAMPLES, "--to", "prometheus")
    assert rc == 2 and "FILE" in err


def test_tracker_payload_has_a_run_per_file_and_the_cases_metrics():
    df = load_results([EXAMPLES])
    runs = tracking.payloads(df)
    assert [r["artifact"] for r in runs] == list(dict.fromkeys(df["results_file"]))
    for r in runs:
        mine = df[(df["results_file"] == r["artifact"]) & (df["status"] == "ok")]
        assert r["params"]["run_id"] == mine["run_id"].iloc[0] and len(r["cases"]) == len(mine)
        for c, row in zip(r["cases"], mine.to_dict("records")):
            assert c["name"] == row["case_id"] and c["params"]["model"] == row["model"]
            assert c["metrics"]["latency_ms_p50"] == row["latency_ms_p50"]
            assert all(math.isfinite(v) for v in c["metrics"].values())


@pytest.mark.parametrize("to,module", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_tracker_that_is_not_installed_names_its_extra(to, module):
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    rc, _, err = cli("export", EXAMPLES, "--to", to)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and f'pip install "hwbench[{to}]"' in err


def test_mlflow_runs_read_back_when_mlflow_is_installed(tmp_path, monkeypatch):
    """With hwbench[mlflow] installed: a run per file with the file as its artifact and a
    nested run per ok case (checked by hand with mlflow-skinny 3.18; CI has no mlflow)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    smoke = EXAMPLES / "smoke-cpu-amd-epyc-2cores.json"
    rc, _, err = cli("export", smoke, "--to", "mlflow")
    assert rc == 0, err
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    runs = mlflow.search_runs(experiment_names=["hwbench"])
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    ok = load_results([smoke]).query("status == 'ok'")
    assert len(parents) == 1 and len(runs) == 1 + len(ok)
    from mlflow.tracking import MlflowClient

    assert [a.path for a in MlflowClient().list_artifacts(parents.iloc[0]["run_id"])] == [smoke.name]
