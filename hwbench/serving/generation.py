"""Generation under load: requests arriving at a rate, served with iteration-level
(continuous) batching and a KV cache per request.

Each iteration of the scheduler first admits every request that has arrived (up to
``max_running`` in flight, the case's batch size) and runs its prefill (the first token
comes out of it), then advances every running request by one decode step with its own
KV cache; a request leaves as soon as its output is complete and a waiting one takes its
place at the next iteration -- no request waits for a batch to drain. The reference
models take one position for a whole batch (no per-row positions or padding masks), so
the requests of an iteration step one after another, each its own forward pass: the
scheduling is continuous batching's; the tensor batching across requests is not there.

Per request: TTFT (arrival to first token), TPOT ((last token - first token) / (output
tokens - 1)), the largest inter-token gap, end-to-end latency (arrival to last token).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Request:
    arrival_s: float
    prompt_len: int
    output_len: int
    cache: object = None
    tok: object = None
    made: int = 0
    first_s: float | None = None
    last_s: float | None = None
    itl_max_s: float = 0.0
    done_s: float | None = None


@dataclass
class Served:
    requests: list[Request]
    duration_s: float
    iteration_s: list[float] = field(default_factory=list)


def serve(prefill: Callable[[int], tuple[object, object]], decode: Callable[[object, object], tuple[object, object]],
          arrivals: list[float], prompt_lens: list[int], output_lens: list[int], max_running: int,
          clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep) -> Served:
    """Serve the requests (module docstring). ``prefill(prompt_len) -> (tok, cache)``
    and ``decode(tok, cache) -> (tok, cache)`` return once their token is ready."""
    pending = deque(Request(a, p, o) for a, p, o in zip(arrivals, prompt_lens, output_lens))
    running: list[Request] = []
    finished: list[Request] = []
    iters: list[float] = []
    t0 = clock()

    def now() -> float:
        return clock() - t0

    def token(r: Request) -> None:
        t = now()
        if r.first_s is None:
            r.first_s = t
        else:
            r.itl_max_s = max(r.itl_max_s, t - r.last_s)
        r.last_s = t
        r.made += 1
        if r.made >= r.output_len:
            r.done_s, r.cache = t, None
            finished.append(r)

    while pending or running:
        t_it = now()
        while pending and pending[0].arrival_s <= t_it and len(running) < max_running:
            r = pending.popleft()
            r.tok, r.cache = prefill(r.prompt_len)
            token(r)
            if r.done_s is None:
                running.append(r)
        for r in list(running):
            r.tok, r.cache = decode(r.tok, r.cache)
            token(r)
        running = [r for r in running if r.done_s is None]
        if running or (pending and pending[0].arrival_s <= now()):
            iters.append(now() - t_it)
        elif pending:
            sleep(max(0.0, pending[0].arrival_s - now()))
    return Served(sorted(finished, key=lambda r: r.arrival_s), now(), iters)


def request_figures(r: Request) -> dict[str, float | None]:
    """One served request's latencies, s: ``ttft_s``, ``tpot_s`` (None for one output
    token), ``itl_max_s``, ``e2e_s``."""
    tpot = (r.last_s - r.first_s) / (r.made - 1) if r.made > 1 else None
    return {"ttft_s": r.first_s - r.arrival_s, "tpot_s": tpot, "itl_max_s": r.itl_max_s,
            "e2e_s": r.done_s - r.arrival_s}
