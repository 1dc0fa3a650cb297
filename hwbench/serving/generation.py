"""Generation under load: requests arriving at a rate, served with iteration-level
(continuous) batching and a KV cache slot per request.

The worker keeps ``max_running`` KV cache slots (the case's batch size;
:mod:`hwbench.models.nets.slots`). Each iteration of the scheduler first admits every
request that has arrived while a slot is free: the request takes the lowest free slot
and its prefill writes its prompt there (one prefill call per request, batch 1; its
first token comes out of it). Then ONE batched decode call advances every running
request -- the ones admitted in this iteration too -- by one token, each row at its own
position with attention masked to its own slot. A request leaves (and frees its slot)
as soon as its output is complete and a waiting one takes that slot at the next
iteration -- no request waits for a batch to drain.

Per request: TTFT (arrival to first token), TPOT ((last token - first token) / (output
tokens - 1)), the largest inter-token gap, end-to-end latency (arrival to last token).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class Request:
    arrival_s: float
    prompt_len: int
    output_len: int
    slot: int | None = None  # the KV cache slot it held (kept after it left)
    tok: object = None  # its latest token while running
    made: int = 0
    first_s: float | None = None
    last_s: float | None = None
    itl_max_s: float = 0.0
    done_s: float | None = None


@dataclass
class Served:
    requests: list[Request]  # in the order given (arrival order)
    duration_s: float
    iteration_s: list[float] = field(default_factory=list)
    decode_rows: list[int] = field(default_factory=list)  # running requests per decode call


Prefill = Callable[[int, int], object]
Decode = Callable[[Sequence[int], Sequence[object]], Sequence[object]]


def serve(prefill: Prefill, decode: Decode, arrivals: list[float], prompt_lens: list[int], output_lens: list[int],
          max_running: int, clock: Callable[[], float] = time.perf_counter,
          sleep: Callable[[float], None] = time.sleep) -> Served:
    """Serve the requests (module docstring). ``prefill(slot, prompt_len) -> tok``
    writes a new request's prompt into ``slot``; ``decode(slots, toks) -> toks`` runs one
    batched step for the running requests in those slots (ascending), given their
    latest tokens. Both return once their tokens are ready."""
    requests = [Request(a, p, o) for a, p, o in zip(arrivals, prompt_lens, output_lens)]
    pending = deque(requests)
    free = list(range(max_running))  # a heap: the lowest free slot first
    running: list[Request] = []
    served = Served(requests, 0.0)
    t0 = clock()

    def now() -> float:
        return clock() - t0

    def token(r: Request, t: float) -> None:
        if r.first_s is None:
            r.first_s = t
        else:
            r.itl_max_s = max(r.itl_max_s, t - r.last_s)
        r.last_s = t
        r.made += 1
        if r.made >= r.output_len:
            r.done_s, r.tok = t, None
            heapq.heappush(free, r.slot)

    while pending or running:
        t_it = now()
        while pending and pending[0].arrival_s <= t_it and free:
            r = pending.popleft()
            r.slot = heapq.heappop(free)
            r.tok = prefill(r.slot, r.prompt_len)
            token(r, now())
            if r.done_s is None:
                running.append(r)
        if running:
            running.sort(key=lambda r: r.slot)
            toks = decode([r.slot for r in running], [r.tok for r in running])
            served.decode_rows.append(len(running))
            t = now()
            for r, tok in zip(running, toks):
                r.tok = tok
                token(r, t)
        running = [r for r in running if r.done_s is None]
        if running or (pending and pending[0].arrival_s <= now()):
            served.iteration_s.append(now() - t_it)
        elif pending:
            sleep(max(0.0, pending[0].arrival_s - now()))
    served.duration_s = now()
    return served


def request_figures(r: Request) -> dict[str, float | None]:
    """One served request's latencies, s: ``ttft_s``, ``tpot_s`` (None for one output
    token), ``itl_max_s``, ``e2e_s``."""
    tpot = (r.last_s - r.first_s) / (r.made - 1) if r.made > 1 else None
    return {"ttft_s": r.first_s - r.arrival_s, "tpot_s": tpot, "itl_max_s": r.itl_max_s,
            "e2e_s": r.done_s - r.arrival_s}
