"""A serving case inside its worker: build the model as every case does (precision,
variant, backend, device), then run its load points -- LoadGen scenarios through the
batching SUT (:mod:`.sut`), or generation under load (:mod:`.generation`) -- and return
the raw record (:class:`hwbench.records.Serving`). Statistics are derived at load."""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .. import backends, devices, timing
from ..records import LoadPoint, Measurement, Serving
from . import arrivals, capacity, instances, slo
from .sut import run_test

# The calibration that gives the capacity search its upper bound (and the Offline
# test its expected rate): full batches back to back for this long.
CALIBRATE_S = 0.5
WARMUP_ITERS = 3


@dataclass
class ServedCase:
    measurement: Measurement
    facts: dict[str, Any]
    marks: dict[str, float]


def run(case, settings, fam, size, cfg, device, send: Callable[[str, float], None]) -> ServedCase:
    """Run serving case ``case`` (see module docstring); ``send(event, t)`` marks the
    window the runner's collectors cut (``window_start`` / ``window_end``)."""
    torch.manual_seed(settings.seed)
    prep = backends.prepare(fam.build(cfg), case, device, fam.float_inputs)
    prep.model = backends.compile_model(prep.model, case, settings.compile_mode)
    prep.model.eval()
    timer = timing.Timer(device)
    marks: dict[str, float] = {}
    if case.mode == "generate":
        serving, times, t_warm = _generate(case, settings, cfg, prep, timer, device, send, marks)
    else:
        serving, times, t_warm = _loadgen(case, settings, fam, cfg, prep, timer, device, send, marks)
    m = Measurement(raw_times_s=[times], first_iter_s=t_warm[0], warmup_s=t_warm[1],
                    measured_s=marks["window_end"] - marks["first_timed"], serving=serving)
    acc = devices.of_torch(device)
    flops = (fam.flops_generate(cfg, case.seq_len, case.gen_tokens) if case.mode == "generate"
             else fam.flops_per_sample(size, "infer", case.shape))
    facts = {"params": fam.param_count(cfg), "active_params": fam.active_params(cfg), "flops_per_sample": flops,
             "threads_used": torch.get_num_threads() if acc.host_threads() else None, "changes": prep.changes or {},
             "flops_counted_reason": "serving case: FLOPs are not counted"}
    facts.update(acc.memory_peaks(device))  # device memory peaks where the kind reports them
    return ServedCase(m, facts, marks)


def _start(send, marks) -> None:
    marks["first_timed"] = time.monotonic()
    send("window_start", marks["first_timed"])


def _end(send, marks) -> None:
    marks["window_end"] = time.monotonic()
    send("window_end", marks["window_end"])


def _loadgen(case, settings, fam, cfg, prep, timer, device, send, marks):
    acc = devices.of_torch(device)
    preps = instances.replicas(prep, case.instances,
                               lambda: instances.build_replica(case, settings, fam, cfg, device))
    torch.manual_seed(settings.seed + 1)
    inputs, _ = fam.make_batch(cfg, case.batch_size, case.shape, device, torch.float32)
    if fam.float_inputs:
        inputs = inputs.to(prep.input_dtype)
    insts = instances.make_instances(preps, inputs, acc, device,
                                     torch.get_num_threads() if acc.host_threads() else None)
    forwards = [i.forward for i in insts]

    t0 = time.perf_counter()
    forwards[0](case.batch_size)
    first = time.perf_counter() - t0
    for forward in forwards:
        for n in (1, case.batch_size) * WARMUP_ITERS:
            forward(n)
    warm = time.perf_counter() - t0
    marks["ready"] = time.monotonic()
    full = _calibrate(insts, case.batch_size)
    st = settings
    root = tempfile.mkdtemp(prefix="hwbench-loadgen-")
    times: list[float] = []
    points: list[LoadPoint] = []

    def point(scenario: str, qps: float | None) -> LoadPoint:
        r = run_test(scenario, forwards, max_batch=case.batch_size, max_batch_wait_s=st.max_batch_wait_ms / 1e3,
                     outdir=f"{root}/point{len(points)}", duration_s=st.scenario_duration_s,
                     min_queries=st.min_query_count, target_qps=qps, slo_ms=case.latency_slo_ms,
                     pct=st.latency_slo_percentile, expected_qps=full * 1.5,
                     thread_init=lambda i: insts[i].enter_thread())
        times.extend(r.batch_times_s)
        lat_ms = [x * 1e3 for x in r.latencies_s]
        samples = sum(r.batches)
        p = LoadPoint(offered_qps=qps, achieved_qps=samples / r.window_s if r.window_s > 0 else 0.0,
                      duration_s=r.window_s, latencies_s=[round(x, 9) for x in r.latencies_s], loadgen_log=r.outdir,
                      loadgen_summary=r.summary, mean_batch=samples / len(r.batches) if r.batches else None,
                      slo_met=slo.slo_met(lat_ms, case.latency_slo_ms, st.latency_slo_percentile),
                      instance_batches=r.instance_batches if case.instances > 1 else None)
        points.append(p)
        return p

    _start(send, marks)
    cap, rule = None, ""
    if case.scenario == "server" and case.load is None:
        found = capacity.find_capacity(lambda q: bool(point("server", q).slo_met), full,
                                       rel_tol=st.capacity_rel_tol)
        cap, rule = found.capacity, found.stopped
    else:
        point(case.scenario, case.load if case.scenario == "server" else None)
    _end(send, marks)
    serving = Serving(scenario=case.scenario, points=points, capacity_qps_at_slo=cap, capacity_rule=rule,
                      fixed_batch_samples_per_s=full, instance_threads=insts[0].threads)
    return serving, times or [first], (first, warm)


def _calibrate(insts, batch: int) -> float:
    """Samples/s of full batches back to back for CALIBRATE_S on every instance at
    once (each in its own thread where there are several): the sum over instances of
    batch / its median batch time."""
    if len(insts) == 1:
        return batch / _median_batch_s(insts[0].forward, batch)
    medians: list[float] = [0.0] * len(insts)
    errors: list[tuple[int, BaseException]] = []

    def one(i: int) -> None:
        try:
            insts[i].enter_thread()
            medians[i] = _median_batch_s(insts[i].forward, batch)
        except BaseException as e:  # noqa: BLE001 - raised below, in the worker's thread
            errors.append((i, e))

    threads = [threading.Thread(target=one, args=(i,), name=f"hwbench-calibrate-{i}") for i in range(len(insts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        i, e = errors[0]
        raise RuntimeError(f"instance {i + 1} of {len(insts)} failed while calibrating: {e}") from e
    return sum(batch / m for m in medians)


def _median_batch_s(forward, batch: int) -> float:
    """The median time of full batches back to back for CALIBRATE_S, s."""
    times: list[float] = []
    end = time.perf_counter() + CALIBRATE_S
    while time.perf_counter() < end or len(times) < 3:
        t = time.perf_counter()
        forward(batch)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def _generate(case, settings, cfg, prep, timer, device, send, marks):
    from ..models.nets.slots import SlotCache, slot_forward
    from .generation import request_figures, serve

    model, autocast = prep.model, prep.autocast
    vocab = cfg["vocab"]
    gen = torch.Generator(device="cpu").manual_seed(settings.seed + 1)
    # one slot per request in flight, each long enough for the longest request
    slots = SlotCache(case.batch_size, case.seq_len + (case.gen_tokens or 1))

    def prefill(slot: int, n: int):
        """The prompt of a new request into ``slot`` (batch 1); its first token."""
        ids = torch.randint(0, vocab, (1, n), generator=gen).to(device)
        slots.free(slot)
        with torch.inference_mode(), autocast():
            tok = slot_forward(model, slots, ids, [slot])[:, -1].argmax(-1, keepdim=True)
        timer.sync()
        return tok

    def decode(rows, toks):
        """One batched forward: a new token for every running request."""
        with torch.inference_mode(), autocast():
            tok = slot_forward(model, slots, torch.cat(list(toks)), rows)[:, -1].argmax(-1, keepdim=True)
        timer.sync()
        return tok.split(1)

    t0 = time.perf_counter()
    tok = prefill(0, case.seq_len)
    first = time.perf_counter() - t0
    rows = list(range(case.batch_size))
    for _ in range(WARMUP_ITERS):  # a full prefill, then decodes of every slot (short prompts elsewhere)
        toks = [tok] + [prefill(r, 1) for r in rows[1:]]
        for _ in range(min(3, (case.gen_tokens or 1) - 1)):
            toks = decode(rows, toks)
        tok = prefill(0, case.seq_len)
    warm = time.perf_counter() - t0
    marks["ready"] = time.monotonic()
    st = settings
    arr = arrivals.arrival_times(case.arrival, case.load, st.scenario_duration_s, st.seed)
    prompts = arrivals.lengths(st.length_distribution, case.seq_len, len(arr), st.seed + 2)
    outs = arrivals.lengths(st.length_distribution, case.gen_tokens or 1, len(arr), st.seed + 3)

    _start(send, marks)
    served = serve(prefill, decode, arr, prompts, outs, max_running=case.batch_size)
    _end(send, marks)
    figs = [request_figures(r) for r in served.requests]
    rows_run = served.decode_rows
    p = LoadPoint(offered_qps=case.load, achieved_qps=len(figs) / served.duration_s if served.duration_s else 0.0,
                  duration_s=served.duration_s, latencies_s=[f["e2e_s"] for f in figs],
                  ttft_s=[f["ttft_s"] for f in figs], tpot_s=[f["tpot_s"] for f in figs if f["tpot_s"] is not None],
                  itl_max_s=[f["itl_max_s"] for f in figs], output_tokens=[r.made for r in served.requests],
                  mean_batch=sum(rows_run) / len(rows_run) if rows_run else None)
    serving = Serving(scenario="generate", points=[p], decode_batching="batched")
    return serving, [t for t in served.iteration_s if t > 0] or [first], (first, warm)
