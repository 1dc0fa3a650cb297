"""Suite files: format, strict validation, and expansion into frozen :class:`Case` values.

A suite is a TOML file::

    [suite]
    name = "smoke"
    description = "..."

    [settings]            # measurement settings, all optional (defaults below)
    min_time_s = 0.2

    [[matrix]]            # one or more blocks; each is a cartesian product
    models = ["mlp:tiny", "encoder:tiny"]
    modes = ["infer", "train"]
    batch_sizes = [1, 8]
    precisions = ["fp32", "bf16"]

Every error is a :class:`ConfigError` whose message is one line: file, field path, what
is wrong, what is allowed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import backends, models, parallel, precisions, variants
from . import io as iomod
from .errors import ConfigError
from .options import MAX_DURATION_S
from .case import Case, Shape
from .records import CaseIdentity, Count, SuiteRef
from .devices import KINDS
from .registry import closest

import tomllib

# the device kinds a suite may name: "auto" and every kind of the accelerator layer
DEVICE_KINDS = ("auto", *KINDS.names())
# Names people write for a device kind; spelling similarity would suggest the wrong one
# ('gpu' is closer to 'xpu' than to 'cuda').
DEVICE_ALIASES = {"gpu": "cuda", "nvidia": "cuda", "hip": "rocm", "amd": "rocm", "metal": "mps", "apple": "mps",
                  "intel": "xpu", "tpu": "xla", "gaudi": "hpu", "habana": "hpu", "host": "cpu"}


MAX_CASES = 100_000

# The bounds a results record imposes (hwbench.records, one source): a suite value
# beyond them would run its worker and then fail to be recorded.
COUNT_MAX: int = next(m.le for m in Count.__metadata__[0].metadata if hasattr(m, "le"))


def _max_length(record: type[BaseModel], name: str) -> int:
    return next(m.max_length for m in record.model_fields[name].metadata if hasattr(m, "max_length"))


DEVICE_NAME_MAX = _max_length(CaseIdentity, "device")
SUITE_NAME_MAX = _max_length(SuiteRef, "name")
# Ranks of one parallel case: beyond any machine or cluster hwbench launches (torchrun
# numbers ranks in C ints); a world size larger than this machine's devices or cores
# is skipped at planning with the reason.
MAX_WORLD_SIZE = 1_048_576
# A bounded count: what a record holds, from 1 (or ``ge``).
Positive = Annotated[Count, Field(ge=1)]
MAX_CPU_TDP_W = 10_000.0  # beyond any CPU package; keeps estimated joules finite
_DEVICE_RE = re.compile(rf"({'|'.join(DEVICE_KINDS)})(?::([0-9]+))?")


def allowed_devices() -> str:
    """The device names a suite may write, for messages: "auto, cpu, cuda, cuda:N, ..."."""
    return ", ".join(["auto"] + [f"{k}, {k}:N" if KINDS.get(k).indexed else k for k in KINDS.names()])


def parse_device(name: str) -> tuple[str, int | None] | None:
    """A device name (``auto``, a kind of the accelerator layer, ``<kind>:N`` for
    indexed kinds; N in ASCII digits) -> (kind, index or None); None if it is not one."""
    m = _DEVICE_RE.fullmatch(name) if len(name) <= DEVICE_NAME_MAX else None
    if m is None or (m.group(2) is not None and (m.group(1) == "auto" or not KINDS.get(m.group(1)).indexed)):
        return None
    return m.group(1), None if m.group(2) is None else int(m.group(2))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class SuiteInfo(_Strict):
    name: str = Field(min_length=1, max_length=SUITE_NAME_MAX, description="Short name, used in results file names")
    description: str = Field("", description="Free text shown by `hwbench list suites`")


class Settings(_Strict):
    """Measurement settings. Units are in the names."""

    warmup_iters: Count = Field(3, ge=0, description="Untimed iterations before measuring (the first is timed separately)")
    warmup_s: float = Field(0.0, ge=0, le=MAX_DURATION_S, description="Keep warming up until this much time has passed")
    min_time_s: float = Field(1.0, gt=0, le=MAX_DURATION_S, description="Measure at least this long per repeat")
    min_iters: Positive = Field(10, ge=1, description="Measure at least this many iterations per repeat")
    max_iters: Positive = Field(100_000, ge=1, description="Stop a repeat after this many iterations")
    repeats: Positive = Field(1, ge=1, description="Measurement rounds per case; raw times kept per round")
    timeout_s: float = Field(600.0, gt=0, le=MAX_DURATION_S, description="Wall-clock limit per case, worker start to result")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed for weights and inputs")
    collectors: list[str] = Field(
        ["host", "nvidia", "rapl"], description="Samplers to run; those this machine lacks are noted and skipped"
    )
    sample_interval_s: float = Field(0.1, ge=0.01, le=MAX_DURATION_S, description="Collector sampling interval, s")
    per_core: bool = Field(False, description="Also sample each CPU core's utilisation")
    store_samples: bool = Field(True, description="Keep each case's sample time series in the results file")
    idle_baseline_s: float = Field(2.0, ge=0, le=MAX_DURATION_S, description="Measure idle power this long once per run (0: skip)")
    min_energy_window_s: float = Field(
        0.0, ge=0, le=MAX_DURATION_S, description="Measure at least this long (all repeats together) so energy counters resolve it"
    )
    cpu_tdp_w: float | None = Field(None, gt=0, le=MAX_CPU_TDP_W, description="CPU package TDP, W, for estimated energy without RAPL")
    noise_threshold: float = Field(0.1, gt=0, description="IQR/median above which a case is flagged noisy")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode for the compile backend"
    )
    max_batch_size: Positive = Field(4096, ge=1, description="Upper bound of the batch_sizes = [\"auto\"] search")
    check_accuracy: bool = Field(True, description="Record output deviation from fp32 eager for every other case")
    count_flops: bool = Field(True, description="Count FLOPs of one step with torch.utils.flop_counter")
    distill_alpha: float = Field(
        0.5, ge=0, le=1,
        description="distill:<size> variants: weight of the distillation loss (KL divergence to the teacher's "
        "softened outputs); the task loss gets 1 - distill_alpha",
    )
    distill_temperature: float = Field(
        2.0, gt=0, description="distill:<size> variants: softmax temperature of teacher and student logits in the "
        "distillation loss (scaled by its square, as Hinton et al.)",
    )
    scaling: Literal["weak", "strong"] = Field(
        "weak", description="Parallel cases: weak = batch_size is per rank (the group processes batch_size x "
        "world_size samples per step); strong = batch_size is the group's global batch (split over the ranks)",
    )
    microbatches: Positive = Field(2, ge=1, description="pp cases: microbatches per step (the batch must divide by it)")
    pp_schedule: Literal["gpipe", "1f1b"] = Field(
        "gpipe", description="pp cases: torch.distributed.pipelining schedule (ScheduleGPipe or Schedule1F1B)")
    comm_profile_steps: int = Field(
        3, ge=0, le=100, description="Parallel cases: steps run under torch.profiler after the timed window to "
        "measure time in collectives (0: skip)",
    )
    bucket_cap_mb: float | None = Field(
        None, gt=0, le=65536, description="ddp cases: DistributedDataParallel's gradient bucket size, MiB "
        "(default: torch's, 25)")
    comm_accuracy_steps: int = Field(
        5, ge=0, le=1000, description="Parallel cases with a comm setting: steps run uncompressed and then "
        "compressed from the same initial state to measure param_rel_l2_vs_none (0: skip)")
    checkpoint_dir: str | None = Field(
        None, min_length=1, max_length=4096,
        description="data and checkpoint cases: the scratch folder their files are written to and removed from "
        "(an existing, writable folder); default: a temporary folder next to the results file")
    data_samples: Positive = Field(
        512, ge=1, description="data cases: samples written to the scratch folder (at least 4 batches are)")
    # serving under load (hwbench.serving, docs/serving.md)
    latency_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Serving: per-query latency SLO, ms, at "
        "latency_slo_percentile (a Server case without server_qps needs it for its capacity search)")
    latency_slo_percentile: float = Field(
        99.0, gt=0, le=100, description="Serving: the latency percentile the SLO applies to, in (0, 100]")
    ttft_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: time-to-first-token SLO, ms")
    tpot_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: time-per-output-token SLO, ms")
    scenario_duration_s: float = Field(
        5.0, gt=0, le=MAX_DURATION_S, description="Serving: length of each load point (LoadGen's min_duration), s")
    max_batch_wait_ms: float = Field(
        2.0, ge=0, le=MAX_DURATION_S * 1e3, description="Serving, Server scenario: the longest the SUT waits "
        "after the oldest queued query for more to fill a batch (a case's batch size is its max batch), ms")
    min_query_count: Positive = Field(
        100, ge=1, description="Serving: queries each LoadGen test runs at least (LoadGen's min_query_count)")
    length_distribution: Literal["fixed", "uniform"] = Field(
        "uniform", description="Generation under load: prompt and output lengths per request; uniform = "
        "integers uniform in [ceil(L/2), L] for L = the case's seq_len / output_len; fixed = L")
    capacity_rel_tol: float = Field(
        0.1, gt=0, lt=1, description="Serving: the capacity search stops when its passing and failing rates "
        "are within this fraction of the failing one")
    memory_limit_gb: float | None = Field(
        None, ge=1, le=65536,
        description="Memory cap per worker, GiB (1 to 65536): the address space of CPU workers (RLIMIT_AS), "
        "the CUDA allocator's share of the GPU for CUDA workers; beyond it allocations fail -> oom",
    )

    @field_validator("collectors")
    @classmethod
    def _collectors(cls, v):
        from .collectors.samplers import KINDS  # the sampler registry

        return _registered(v, tuple(KINDS))

    @model_validator(mode="after")
    def _iters_order(self):
        if self.max_iters < self.min_iters:
            raise ValueError(f"max_iters ({self.max_iters}) is smaller than min_iters ({self.min_iters})")
        return self


def _suggest(value: str, allowed) -> str:
    close = closest(value, allowed)
    return f" (did you mean {close!r}?)" if close else ""


def _canonical_each(names: list[str], canonical) -> list[str]:
    """Each name in its canonical spelling (``canonical`` raises ValueError for a bad
    one; the error names the list index)."""
    out = []
    for i, name in enumerate(names):
        try:
            out.append(canonical(name))
        except ValueError as e:
            raise ValueError(f"[{i}] {e}") from None
    return out


class MatrixBlock(_Strict):
    """One cartesian product of case dimensions."""

    models: list[str] = Field(min_length=1, description="family:size names, see `hwbench list models`")
    modes: list[Literal["infer", "train", "generate", "data", "checkpoint"]] = Field(
        ["infer"], min_length=1, description="infer, train, generate (model steps); data (the input pipeline), "
        "checkpoint (save and load of model + optimizer state): see docs/io.md")
    # Any, checked by _batch_sizes: a union type would report one error per member
    batch_sizes: list[Any] = Field(
        [1], min_length=1, description='Batch sizes; "auto" = powers of two up to the largest that fits'
    )
    # names checked against the registries (hwbench.precisions, hwbench.backends) at
    # validation time, so a newly registered precision is valid without editing this file
    precisions: list[str] = Field(["fp32"], min_length=1, description="see `hwbench list precisions`")
    backends: list[str] = Field(["eager"], min_length=1, description="eager, compile, cudagraphs")
    devices: list[str] = Field(["cpu"], min_length=1, description=allowed_devices() + " (hwbench list devices)")
    # integers checked by _positive (1 to COUNT_MAX: what a record holds)
    threads: list[int] | None = Field(None, min_length=1, description="CPU intra-op threads; default torch's")
    seq_lens: list[int] | None = Field(None, min_length=1, description="Tokens per sample (transformers)")
    image_sizes: list[int] | None = Field(None, min_length=1, description="Pixels per side (CNN)")
    output_lens: list[int] | None = Field(None, min_length=1, description="Tokens to generate (generate mode)")
    variants: list[str] = Field(
        ["none"], min_length=1, description="none, prune:<sparsity 0..1>, sparse24, distill:<student size>")
    # names checked against the strategy registry (hwbench.parallel.STRATEGIES)
    parallelism: list[str] = Field(
        ["none"], min_length=1,
        description=f"none (one process), {', '.join(parallel.STRATEGIES.names())}: launched as a torchrun group")
    comm: list[str] = Field(
        ["none"], min_length=1, description="Gradient compression of data-parallel cases: none, fp16, bf16, "
        "powersgd:<rank> (hwbench.parallel.comm)")
    # data cases (hwbench.io.data): the DataLoader's settings, one case per combination
    num_workers: list[int] | None = Field(
        None, min_length=1, description="data cases: DataLoader worker processes, 0 (load in the consumer) to "
        "COUNT_MAX (default [0]); more than the logical CPUs is allowed and flagged")
    pin_memory: list[bool] | None = Field(
        None, min_length=1, description="data cases: DataLoader pin_memory, true / false (default [false])")
    prefetch_factors: list[int] | None = Field(
        None, min_length=1, description="data cases: batches each loader worker keeps ahead, 1 or more "
        "(default [2]; cases with num_workers = 0 have none)")
    persistent_workers: list[bool] | None = Field(
        None, min_length=1, description="data cases: keep loader workers between epochs, true / false (default "
        "[false]; cases with num_workers = 0 have none)")
    checkpointers: list[str] | None = Field(
        None, min_length=1, description=f"checkpoint cases: {', '.join(iomod.CHECKPOINTERS.names())} "
        "(default [\"torch_save\"])")
    world_sizes: list[int] | None = Field(
        None, min_length=1, description="Ranks per parallel case, 1 to MAX_WORLD_SIZE (default [1]); 'none' always "
        "runs one process; more ranks than this machine's GPUs (or, on CPU, cores) are skipped")

    scenarios: list[Literal["single_stream", "multi_stream", "server", "offline"]] | None = Field(
        None, min_length=1, description="Serving: MLPerf LoadGen scenarios of infer cases (docs/serving.md)")
    server_qps: list[float] | None = Field(
        None, min_length=1, description="Server scenario: offered load points, queries/s (left out: the "
        "capacity search alone)")
    request_rates: list[float] | None = Field(
        None, min_length=1, description="Generate mode under load: request rates, requests/s")
    arrival: Literal["poisson", "constant"] | None = Field(
        None, description="Generation under load: the arrival process of request_rates (default poisson)")
    latency_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Serving: this block's latency SLO, ms (default: settings')")
    ttft_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: this block's TTFT SLO, ms")
    tpot_slo_ms: float | None = Field(
        None, gt=0, le=MAX_DURATION_S * 1e3, description="Generation under load: this block's TPOT SLO, ms")

    @field_validator("server_qps", "request_rates")
    @classmethod
    def _rates(cls, v):
        for i, x in enumerate(v or ()):
            if type(x) not in (int, float) or not 0 < x <= 1e9:
                raise ValueError(f"[{i}] must be a rate above 0 and at most 1e9 per second, got {shorten(x)}")
        return [float(x) for x in v] if v is not None else v

    @field_validator("models")
    @classmethod
    def _known_models(cls, v):
        known = models.model_names()
        for i, name in enumerate(v):
            if name not in known:
                raise ValueError(f"[{i}] unknown model {shorten(name)}{_suggest(name, known)}; known: {', '.join(known)}")
        return v

    @field_validator("num_workers")
    @classmethod
    def _workers(cls, v):
        for i, n in enumerate(v or ()):
            if not 0 <= n <= COUNT_MAX:
                raise ValueError(f"[{i}] {n} is not allowed; allowed: 0 to {COUNT_MAX} loader processes")
        return v

    @field_validator("checkpointers")
    @classmethod
    def _checkpointers(cls, v):
        return _registered(v, iomod.CHECKPOINTERS.names()) if v is not None else v

    @field_validator("threads", "seq_lens", "image_sizes", "output_lens", "world_sizes", "prefetch_factors")
    @classmethod
    def _positive(cls, v, info):
        top = MAX_WORLD_SIZE if info.field_name == "world_sizes" else COUNT_MAX
        for i, n in enumerate(v or ()):
            if not 1 <= n <= top:
                raise ValueError(f"[{i}] must be an integer from 1 to {top}, got {shorten(n)}")
        return v

    @field_validator("batch_sizes")
    @classmethod
    def _batch_sizes(cls, v):
        for i, n in enumerate(v):
            if n != "auto" and (type(n) is not int or not 1 <= n <= COUNT_MAX):
                raise ValueError(f'[{i}] must be an integer from 1 to {COUNT_MAX} or "auto", got {shorten(n)}')
        return v

    @field_validator("precisions")
    @classmethod
    def _precisions(cls, v):
        return _registered(v, precisions.names())

    @field_validator("backends")
    @classmethod
    def _backends(cls, v):
        return _registered(v, backends.names())

    @field_validator("parallelism")
    @classmethod
    def _parallelism(cls, v):
        return _registered(v, ("none",) + parallel.STRATEGIES.names())

    @field_validator("variants")
    @classmethod
    def _variants(cls, v):
        return _canonical_each(v, variants.canonical)

    @field_validator("comm")
    @classmethod
    def _comm(cls, v):
        from .parallel import comm

        return _canonical_each(v, comm.canonical)

    @field_validator("devices")
    @classmethod
    def _device_names(cls, v):
        for i, d in enumerate(v):
            kind = d.partition(":")[0]
            if parse_device(d) is None:
                hint = f" (did you mean {DEVICE_ALIASES[kind]!r}?)" if kind in DEVICE_ALIASES else _suggest(kind, DEVICE_KINDS)
                raise ValueError(f"[{i}] {shorten(d)} is not a device{hint}; allowed: {allowed_devices()} (N in digits 0-9)")
        return v


def shorten(value: Any) -> str:
    """A value for an error message: repr, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _registered(values: list[str], allowed: tuple[str, ...]) -> list[str]:
    for i, name in enumerate(values):
        if name not in allowed:
            raise ValueError(f"[{i}] {shorten(name)} is not allowed{_suggest(name, allowed)}; allowed: {', '.join(allowed)}")
    return values


class SuiteSpec(_Strict):
    suite: SuiteInfo
    settings: Settings = Settings()
    matrix: list[MatrixBlock] = Field(min_length=1)


@dataclass(frozen=True)
class LoadedSuite:
    """A validated suite with where it came from, what the user wrote (``raw``) and the
    expanded cases."""

    path: str
    spec: SuiteSpec
    cases: tuple[Case, ...] = field(repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def resolved(self) -> dict[str, Any]:
        """The suite with every default filled in (saved in the results file)."""
        return self.spec.model_dump(mode="json")

    @property
    def suite_hash(self) -> str:
        """sha256 of what the user wrote (parsed, so comments and layout do not count),
        not of the defaults: an hwbench upgrade that adds a setting must not make a
        resume refuse the file."""
        text = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-") or part in ("literal[...]",):
            continue
        else:
            out += ("." if out else "") + part
    return out


def format_validation_error(path: str, err: ValidationError, root: type[BaseModel], where: str = "") -> str:
    """A pydantic ValidationError of ``root.model_validate`` -> the one line a ConfigError
    carries: ``"{path}: {where}{field path}: {what is wrong / allowed}"``, the first error
    only (the count of the others is appended). ``where`` prefixes the field path (a
    CSV row, say); unknown keys list the fields ``root`` allows there. Shared by every
    validated input file (suites here, :mod:`hwbench.prices`)."""
    e = err.errors(include_url=False)[0]
    # pydantic names union members and validator wrappers in loc; they are not fields
    raw = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function"))))
    loc = _loc(raw)
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        if msg.startswith("["):  # a list element or key named by the validator
            idx, _, msg = msg.partition("] ")
            loc += idx + "]"
    elif e["type"] == "extra_forbidden":
        section = raw[:-1]
        allowed = _allowed_fields(root, section)
        msg = (f"unknown key{_suggest(e['loc'][-1], allowed)}; allowed in {_loc(section) or 'the top level'}: "
               f"{', '.join(allowed)}")
    elif e["type"] == "literal_error":
        allowed = _literal_values(e)
        msg = f"{shorten(e['input'])} is not allowed{_suggest(e['input'], allowed)}; allowed: {', '.join(allowed)}"
    elif e["type"] == "missing":
        msg = "missing required field"
    else:
        msg = f"{msg} (got {shorten(e['input'])})" if not isinstance(e.get("input"), (dict, list)) else msg
    more = len(err.errors()) - 1
    tail = f" (and {more} more error{'s' * (more > 1)})" if more else ""
    return f"{path}: {where}{loc or 'the file'}: {msg}{tail}"


def _literal_values(e) -> list[str]:
    # pydantic's ctx["expected"] reads "'a', 'b' or 'c'"
    return [s.strip().strip("'") for s in e["ctx"]["expected"].replace(" or ", ", ").split(",")]


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The fields of the model that ``loc`` (a path of field names and list indexes from
    ``model``) leads to."""
    for part in loc:
        if isinstance(part, int):
            continue
        ann = model.model_fields[part].annotation
        args = getattr(ann, "__args__", None)
        inner = args[0] if args else ann
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
    return list(model.model_fields)


def parse_toml(text: str, path: str, what: str) -> dict[str, Any]:
    """TOML text -> a dict, or a one-line ConfigError (syntax, or nesting deeper than
    Python's recursion limit: tomllib recurses per level). Shared by every TOML input
    (suites, :mod:`hwbench.prices`); ``what`` names the kind of file."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not {what} (TOML nested too deeply)") from None


def parse_suite(text: str, path: str = "<suite>") -> LoadedSuite:
    """Parse and validate suite text. Raises :class:`ConfigError` with a one-line message."""
    data = parse_toml(text, path, "a suite file")
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(path, e, SuiteSpec)) from None
    except RecursionError:
        raise ConfigError(f"{path}: not a suite file (nested too deeply)") from None
    cases = expand(spec, path)
    check_serving_settings(spec, path)
    return LoadedSuite(path=path, spec=spec, cases=cases, raw=data)


SHIPPED = Path(__file__).resolve().parent / "suites"


def shipped_suites() -> list[Path]:
    """The suite files shipped with hwbench (package data)."""
    return sorted(SHIPPED.glob("*.toml"))


def find_suite(name: str | Path) -> Path:
    """A suite file path, or the name of a shipped suite (``smoke`` or ``smoke.toml``)."""
    p = Path(name)
    if p.is_file():
        return p
    stem = p.name[: -len(".toml")] if p.name.endswith(".toml") else p.name
    if p.parent == Path(".") and (SHIPPED / f"{stem}.toml").is_file():
        return SHIPPED / f"{stem}.toml"
    names = ", ".join(q.stem for q in shipped_suites())
    raise ConfigError(f"{name}: no such suite file (shipped suites: {names})")


def load_suite(path: str | Path) -> LoadedSuite:
    """Read and validate a suite file, or a shipped suite by name."""
    p = find_suite(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read suite file: {e}") from None
    return parse_suite(text, str(path))


def expand(spec: SuiteSpec, path: str = "<suite>") -> tuple[Case, ...]:
    """Expand every matrix block into cases (order: block, model, mode, shape, batch,
    precision, backend, device, threads). Duplicates across blocks are dropped. Raises
    ConfigError for a contradictory combination, e.g. a mode the model lacks."""
    out: dict[Case, None] = {}
    total = 0
    for bi, block in enumerate(spec.matrix):
        total += block_size(block)
        if total > MAX_CASES:
            raise ConfigError(f"{path}: matrix: expands to more than {MAX_CASES} cases (blocks 0 to {bi}: {total}); "
                              "split the suite")
    for bi, block in enumerate(spec.matrix):
        _check_applicable(block, f"{path}: matrix[{bi}]")
        for name in block.models:
            fam, size = models.get(name)
            cfg = fam.sizes[size]
            for var in block.variants:
                why = variants.model_error(var, name)
                if why is not None:
                    raise ConfigError(f"{path}: matrix[{bi}].variants: {why}")
            for mode in block.modes:
                if mode not in iomod.modes_of(fam):
                    raise ConfigError(f"{path}: matrix[{bi}].modes: model {name!r} has no mode {mode!r}; it supports "
                                      f"{', '.join(iomod.modes_of(fam))}")
            shapes = _shapes(fam, cfg, block, f"{path}: matrix[{bi}]", name)
            gens = block.output_lens or [32]
            if "generate" in block.modes and fam.shape_kind == "seq_len":
                limit = fam.max_seq_len(cfg)
                for shape in shapes:
                    for g in gens:
                        if shape.seq_len + g > limit:
                            raise ConfigError(
                                f"{path}: matrix[{bi}].output_lens: prompt {shape.seq_len} + {g} generated tokens "
                                f"exceeds {name}'s context of {limit}"
                            )
            for mode in block.modes:
                for shape in shapes:
                    for bs in block.batch_sizes:
                        for prec in block.precisions:
                            for backend in block.backends:
                                for dev in block.devices:
                                    for th in block.threads or [None]:
                                        for var in block.variants:
                                            for g in gens if mode == "generate" else [None]:
                                                for (par, ws, cm), serving in itertools.product(
                                                        _parallel_points(block), _serving_points(block, mode, spec.settings)):
                                                    for io in io_points(block, mode):
                                                        case = Case(name, mode, 0 if bs == "auto" else bs, prec,
                                                                    backend, dev, th, shape.seq_len, shape.image_size,
                                                                    var, g, par, ws, cm, **io,
                                                                    **dict(zip(SERVING_FIELDS, serving)))
                                                        out[case] = None
    return tuple(out)


def block_size(block: MatrixBlock) -> int:
    """The cases :func:`expand` makes of ``block`` (before dropping duplicates), counted
    as it counts them: per model its own shapes (seq_lens for sequence models,
    image_sizes for image models, one default otherwise), output lengths in generate
    mode only."""
    per_point = 1
    for d in (block.batch_sizes, block.precisions, block.backends, block.devices, block.threads or [None],
              block.variants, _parallel_points(block)):
        per_point *= len(d)
    n = 0
    for name in block.models:
        fam, _ = models.get(name)
        shapes = len({"seq_len": block.seq_lens, "image_size": block.image_sizes}.get(fam.shape_kind) or [None])
        for mode in block.modes:
            n += (shapes * (len(block.output_lens or [32]) if mode == "generate" else 1) * len(io_points(block, mode))
                  * len(_serving_points(block, mode)))
    return n * per_point


def io_points(block: MatrixBlock, mode: str) -> list[dict[str, Any]]:
    """The :class:`Case` fields of a block's data or checkpoint cases (one dict per
    case; ``[{}]`` for other modes). A data case without loader processes
    (num_workers = 0) has no prefetch factor and no persistent workers: DataLoader
    takes neither then, so those dimensions collapse there."""
    if mode == "checkpoint":
        return [{"checkpointer": c} for c in block.checkpointers or ["torch_save"]]
    if mode != "data":
        return [{}]
    out: list[dict[str, Any]] = []
    for w in block.num_workers or [0]:
        for pin in block.pin_memory or [False]:
            for pf in block.prefetch_factors or [2]:
                for keep in block.persistent_workers or [False]:
                    point = {"num_workers": w, "pin_memory": pin, "prefetch_factor": pf if w else None,
                             "persistent_workers": keep if w else None}
                    if point not in out:
                        out.append(point)
    return out


def _parallel_points(block: MatrixBlock) -> list[tuple[str, int, str]]:
    """(parallelism, world_size, comm) of a block: every strategy at every world size
    and comm setting; ``none`` is one process, so only at world size 1 without comm."""
    out = []
    for par in block.parallelism:
        for ws in ([1] if par == "none" else block.world_sizes or [1]):
            for cm in (["none"] if par == "none" else block.comm):
                if (par, ws, cm) not in out:
                    out.append((par, ws, cm))
    return out


# A shape dimension and the families' shape_kind (or mode) it applies to.
_DIMENSIONS = {"seq_lens": "seq_len", "image_sizes": "image_size"}


def _check_applicable(block: MatrixBlock, where: str) -> None:
    """A dimension no model of the block takes is an error, not a silent no-op. In a
    block that mixes families, it applies to the models that take it (documented)."""
    fams = [models.get(n)[0] for n in block.models]
    for dim, kind in _DIMENSIONS.items():
        if getattr(block, dim) is not None and not any(f.shape_kind == kind for f in fams):
            takers = sorted({f.name for f in models.REGISTRY.values() if f.shape_kind == kind})
            raise ConfigError(
                f"{where}.{dim}: no model of this block takes it ({', '.join(block.models)}); it applies to {', '.join(takers)}"
            )
    if block.output_lens is not None and "generate" not in block.modes:
        raise ConfigError(f"{where}.output_lens: applies to modes = [\"generate\"] only; this block has {', '.join(block.modes)}")
    if block.world_sizes is not None and block.parallelism == ["none"]:
        *rest, last = (f'"{n}"' for n in parallel.STRATEGIES.names())
        raise ConfigError(f"{where}.world_sizes: applies to parallel cases only; add parallelism = "
                          f"[{', '.join(rest)} or {last}]")
    if block.comm != ["none"] and block.parallelism == ["none"]:
        takes = " or ".join(f'["{n}"]' for n, x in parallel.STRATEGIES.items() if x.comm)
        raise ConfigError(f"{where}.comm: applies to parallel cases only; add parallelism = {takes}")
    if any(p != "none" for p in block.parallelism) and any(m != "train" for m in block.modes):
        raise ConfigError(f"{where}.parallelism: parallel strategies train; this block has modes "
                          f"{', '.join(block.modes)} (use modes = [\"train\"])")
    for key, mode in (("num_workers", "data"), ("pin_memory", "data"), ("prefetch_factors", "data"),
                      ("persistent_workers", "data"), ("checkpointers", "checkpoint")):
        if getattr(block, key) is not None and mode not in block.modes:
            raise ConfigError(f"{where}.{key}: applies to modes = [\"{mode}\"] only; this block has "
                              f"{', '.join(block.modes)}")
    io = [m for m in block.modes if m in iomod.IO_MODES]
    if io and (block.backends != ["eager"] or block.variants != ["none"]):
        key = "backends" if block.backends != ["eager"] else "variants"
        raise ConfigError(f"{where}.{key}: modes {', '.join(io)} run no model step, so they take backends = "
                          "[\"eager\"] and variants = [\"none\"] only; put them in a block of their own")
    _check_serving(block, where)
    if block.threads is not None and not any(d == "cpu" or d == "auto" for d in block.devices):
        raise ConfigError(f"{where}.threads: applies to CPU devices only; this block has {', '.join(block.devices)}")


def _check_serving(block: MatrixBlock, where: str) -> None:
    """Serving dimensions (hwbench.serving) only where they apply."""
    if block.scenarios is not None and block.modes != ["infer"]:
        raise ConfigError(f"{where}.scenarios: LoadGen scenarios serve inference; this block has modes "
                          f"{', '.join(block.modes)} (use modes = [\"infer\"])")
    if block.server_qps is not None and "server" not in (block.scenarios or ()):
        raise ConfigError(f"{where}.server_qps: applies to the Server scenario; add scenarios = [\"server\"]")
    if block.request_rates is not None and block.modes != ["generate"]:
        raise ConfigError(f"{where}.request_rates: applies to generation under load; use modes = [\"generate\"]")
    for k in ("latency_slo_ms", "ttft_slo_ms", "tpot_slo_ms"):
        if getattr(block, k) is not None and block.scenarios is None and block.request_rates is None:
            raise ConfigError(f"{where}.{k}: applies to serving blocks (scenarios = [...] or request_rates = [...])")
    if block.arrival is not None and block.request_rates is None:
        raise ConfigError(f"{where}.arrival: applies with request_rates = [...] (generation under load)")
    if (block.scenarios is not None or block.request_rates is not None) and block.parallelism != ["none"]:
        raise ConfigError(f"{where}.parallelism: serving cases run in one process; use parallelism = [\"none\"]")


def check_serving_settings(spec: "SuiteSpec", path: str) -> None:
    """Settings a serving block needs: an SLO for a capacity search, a duration long
    enough for LoadGen's minimum query count at every offered rate."""
    st = spec.settings
    for bi, block in enumerate(spec.matrix):
        where = f"{path}: matrix[{bi}]"
        if (block.scenarios is not None or block.request_rates is not None) and st.repeats >= 3:
            raise ConfigError(f"{path}: settings.repeats: {st.repeats} repeats (each in its own worker) do not apply "
                              f"to serving cases (matrix[{bi}]); a load point is one LoadGen test: use repeats <= 2 "
                              "or a separate suite for the serving blocks")
        if "server" in (block.scenarios or ()) and block.server_qps is None and (block.latency_slo_ms or
                                                                                  st.latency_slo_ms) is None:
            raise ConfigError(f"{where}.server_qps: left out, the capacity search needs settings.latency_slo_ms "
                              "(or list the load points: server_qps = [...])")
        for name, rates in (("server_qps", block.server_qps), ("request_rates", block.request_rates)):
            for i, r in enumerate(rates or ()):
                if name == "server_qps" and r * st.scenario_duration_s < st.min_query_count:
                    raise ConfigError(
                        f"{where}.{name}[{i}]: {r:g} queries/s for scenario_duration_s = {st.scenario_duration_s:g} s "
                        f"issues {r * st.scenario_duration_s:g} queries, fewer than min_query_count = "
                        f"{st.min_query_count} (LoadGen would run longer); raise the duration or the rate")
                if name == "request_rates" and r * st.scenario_duration_s < 1:
                    raise ConfigError(f"{where}.{name}[{i}]: {r:g} requests/s for scenario_duration_s = "
                                      f"{st.scenario_duration_s:g} s issues no request; raise the duration or the rate")


# the Case fields a serving point gives, in the order of _serving_points' tuples
SERVING_FIELDS = ("scenario", "load", "arrival", "latency_slo_ms", "ttft_slo_ms", "tpot_slo_ms")


def _serving_points(block: MatrixBlock, mode: str, st: Settings | None = None) -> list[tuple]:
    """(scenario, load, arrival, latency / TTFT / TPOT SLO) of a block's cases in
    ``mode``: every scenario (a Server one at each of server_qps, or once for its
    capacity search), every request rate of generation under load, or one plain case.
    A serving case's SLOs are the block's, else the settings' (``st``)."""
    slos = tuple(getattr(block, k) if getattr(block, k) is not None else getattr(st, k, None)
                 for k in ("latency_slo_ms", "ttft_slo_ms", "tpot_slo_ms"))
    if mode == "infer" and block.scenarios:  # judged by latency
        return [(sc, q, "none", slos[0], None, None) for sc in block.scenarios
                for q in ((block.server_qps or [None]) if sc == "server" else [None])]
    if mode == "generate" and block.request_rates:  # judged by TTFT and TPOT (MLPerf's LLM rules)
        return [("none", r, block.arrival or "poisson", None, *slos[1:]) for r in block.request_rates]
    return [("none", None, "none", None, None, None)]


def _shapes(fam, cfg, block: MatrixBlock, where: str, name: str) -> list[Shape]:
    if fam.shape_kind == "seq_len":
        lens = block.seq_lens or [cfg["seq_len"]]
        limit = fam.max_seq_len(cfg)
        for n in lens:
            if n > limit:
                raise ConfigError(f"{where}.seq_lens: {n} exceeds {name}'s maximum sequence length {limit}")
        return [Shape(seq_len=n) for n in lens]
    if fam.shape_kind == "image_size":
        sizes = block.image_sizes or [cfg["image_size"]]
        for n in sizes:
            if n < 64:
                raise ConfigError(f"{where}.image_sizes: {n} is too small for {name} (at least 64 pixels)")
        return [Shape(image_size=n) for n in sizes]
    return [Shape()]
