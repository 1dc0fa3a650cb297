"""Prometheus: the text exposition format, for node_exporter's textfile collector
(``--to prometheus FILE``) or a Pushgateway (``--to pushgateway URL``).

Metric names follow Prometheus conventions (base units, a unit suffix, ``_total`` only
for counters): each ok case of the newest run per label set (case, device, host) gives

- ``hwbench_latency_seconds`` (summary: ``quantile`` 0.5 / 0.9 / 0.99, ``_count`` the
  timed iterations, ``_sum`` their total time);
- gauges ``hwbench_throughput_samples_per_second``, ``hwbench_tokens_per_second``,
  ``hwbench_energy_per_sample_joules`` and ``hwbench_power_watts`` (with
  ``energy_source``: an estimate is labelled as one), ``hwbench_memory_peak_bytes``,
  ``hwbench_mfu_ratio`` (0-1);

and per run ``hwbench_run_info`` (1, labels run_id, suite, host, hwbench_version),
``hwbench_run_created_timestamp_seconds`` and ``hwbench_cases`` by ``status``. Label
values are escaped by prometheus_client."""

from __future__ import annotations

import math
from typing import Any

from ..errors import UserError
from . import TARGETS, Target

LABELS = ("case", "device", "host", "suite", "model", "mode", "precision", "backend", "batch_size")
# family name, help, column, factor to base units, extra label columns
GAUGES = (
    ("hwbench_throughput_samples_per_second", "Samples per second (the group's for a parallel case).",
     "throughput_samples_per_s", 1.0, ()),
    ("hwbench_tokens_per_second", "Generated tokens per second.", "tokens_per_s", 1.0, ()),
    ("hwbench_energy_per_sample_joules", "Energy per sample, J (energy_source says how it was measured).",
     "energy_per_sample_j", 1.0, ("energy_source",)),
    ("hwbench_power_watts", "Mean power over the timed window, W.", "power_w_mean", 1.0, ("energy_source",)),
    ("hwbench_memory_peak_bytes", "Device allocator peak, bytes.", "memory_peak_bytes", 1.0, ()),
    ("hwbench_mfu_ratio", "Model FLOP utilisation, a fraction 0-1.", "mfu", 1.0, ()),
)
QUANTILES = (("0.5", "latency_ms_p50"), ("0.9", "latency_ms_p90"), ("0.99", "latency_ms_p99"))


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _text(v) -> str:
    try:
        import pandas as pd

        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            return ""
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def latest(df):
    """The ok rows of ``df``, one per label set (case, device, host): the newest run's."""
    ok = df[df["status"] == "ok"].sort_values("created", kind="stable")
    return ok.drop_duplicates(subset=["case_id", "device_name", "hostname"], keep="last")


def families(df) -> list:
    """The metric families of the cases frame ``df`` (prometheus_client Metric objects)."""
    from prometheus_client.core import GaugeMetricFamily, Metric

    rows = latest(df).to_dict("records")

    def labels(r: dict[str, Any]) -> list[str]:
        return [_text(r.get(k)) for k in ("case_id", "device_name", "hostname", "suite", "model", "mode",
                                          "precision", "backend", "batch_size")]

    out = []
    lat = Metric("hwbench_latency_seconds", "Latency of one timed iteration, s (quantiles of the run).", "summary")
    for r in rows:
        base = dict(zip(LABELS, labels(r)))
        for q, col in QUANTILES:
            v = _num(r.get(col))
            if v is not None:
                lat.add_sample("hwbench_latency_seconds", {**base, "quantile": q}, v / 1e3)
        n, mean = _num(r.get("iterations")), _num(r.get("latency_ms_mean"))
        if n is not None and mean is not None:
            lat.add_sample("hwbench_latency_seconds_count", base, n)
            lat.add_sample("hwbench_latency_seconds_sum", base, n * mean / 1e3)
    out.append(lat)
    for name, doc, col, factor, extra in GAUGES:
        g = GaugeMetricFamily(name, doc, labels=[*LABELS, *extra])
        for r in rows:
            v = _num(r.get(col))
            if v is not None:
                g.add_metric([*labels(r), *(_text(r.get(k)) for k in extra)], v * factor)
        out.append(g)
    out += _run_families(df)
    return out


def _run_families(df) -> list:
    from prometheus_client.core import GaugeMetricFamily

    info = GaugeMetricFamily("hwbench_run_info", "The newest run per host and suite (value 1).",
                             labels=["run_id", "suite", "host", "hwbench_version"])
    created = GaugeMetricFamily("hwbench_run_created_timestamp_seconds", "When the run started, Unix time (s).",
                                labels=["suite", "host"])
    cases = GaugeMetricFamily("hwbench_cases", "Cases of the newest run by status.", labels=["suite", "host", "status"])
    runs = df.sort_values("created", kind="stable").drop_duplicates(subset=["suite", "hostname"], keep="last")
    for r in runs.to_dict("records"):
        suite, host = _text(r.get("suite")), _text(r.get("hostname"))
        info.add_metric([_text(r.get("run_id")), suite, host, _text(r.get("hwbench_version"))], 1.0)
        t = r.get("created")
        if t is not None and hasattr(t, "timestamp") and not (isinstance(t, float) and math.isnan(t)):
            try:
                created.add_metric([suite, host], float(t.timestamp()))
            except ValueError:  # NaT
                pass
        mine = df[df["run_id"] == r.get("run_id")]
        for status, n in mine["status"].value_counts().sort_index().items():
            cases.add_metric([suite, host, str(status)], float(n))
    return [info, created, cases]


def registry(df):
    """A prometheus_client registry holding :func:`families` of ``df``."""
    from prometheus_client import CollectorRegistry

    class _Collector:
        def collect(self):
            return families(df)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector())
    return reg


def text(df) -> str:
    """The exposition text of ``df``."""
    from prometheus_client import generate_latest

    return generate_latest(registry(df)).decode("utf-8")


def _send_file(df, dest: str | None, options: dict[str, Any]) -> str:
    from ..results import write_text_atomic
    from ..writable import output_file, write_error

    output_file(dest, "--to prometheus")
    body = text(df)
    try:
        write_text_atomic(dest, body)  # the collector reads a whole file or the old one
    except OSError as e:
        raise write_error("--to prometheus", dest, e) from None
    n = sum(1 for line in body.splitlines() if line.startswith("hwbench_latency_seconds{"))
    return f"wrote {dest}: {n} latency quantiles of {len(latest(df))} ok cases"


def _push(df, dest: str | None, options: dict[str, Any]) -> str:
    """One push per host (grouping key ``instance``), job ``options['job']``."""
    from prometheus_client import push_to_gateway

    job = options.get("job") or "hwbench"
    hosts = sorted({_text(h) for h in df["hostname"]})
    for host in hosts:
        try:
            push_to_gateway(dest, job=job, registry=registry(df[df["hostname"].astype(object) == host]),
                            grouping_key={"instance": host or "unknown"}, timeout=options.get("timeout", 10))
        except Exception as e:  # urllib's URLError / HTTPError / ValueError for a bad URL: all the user's
            why = getattr(e, "reason", None) or str(e) or type(e).__name__
            raise UserError(f"--to pushgateway {dest}: cannot push: {why}") from None
    return f"pushed {len(latest(df))} ok cases of {len(hosts)} host(s) to {dest} (job {job})"


TARGETS.register(Target("prometheus", "FILE", None, _send_file,
                        "a .prom file for node_exporter's textfile collector"))
TARGETS.register(Target("pushgateway", "URL", None, _push, "a Prometheus Pushgateway (job hwbench, instance = host)"))
