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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import models, parallel, variants
from . import io as iomod
from .case import Case, Shape
from .errors import ConfigError
# the suite file's models (re-exported: spec.Settings, spec.MatrixBlock, ...)
from .suite_format import *  # noqa: F401,F403
from .suite_format import MAX_CASES, MatrixBlock, Settings, SuiteSpec, _suggest, shorten

import tomllib


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
    if any(p != "none" for p in block.parallelism) and any(m not in ("train", "checkpoint") for m in block.modes):
        raise ConfigError(f"{where}.parallelism: parallel strategies train or save sharded checkpoints; this block "
                          f"has modes {', '.join(block.modes)} (use modes = [\"train\"] or [\"checkpoint\"])")
    if "checkpoint" in block.modes:
        iomod.check_sharded(block.parallelism, block.checkpointers, where)
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
    if block.instances is not None and block.scenarios is None:
        raise ConfigError(f"{where}.instances: applies to LoadGen scenarios (scenarios = [...]); generation under "
                          "load and fixed-batch cases run one model")
    if block.arrival is not None and block.request_rates is None:
        raise ConfigError(f"{where}.arrival: applies with request_rates = [...] (generation under load)")
    if (block.scenarios is not None or block.request_rates is not None) and block.parallelism != ["none"]:
        raise ConfigError(f"{where}.parallelism: serving cases run in one process; use parallelism = [\"none\"]")


def check_serving_settings(spec: "SuiteSpec", path: str) -> None:
    """Settings a serving block needs: an SLO for a capacity search, a duration long
    enough for LoadGen's minimum query count at every offered rate."""
    st = spec.settings
    if st.instances != 1 and not any(b.scenarios for b in spec.matrix):
        raise ConfigError(f"{path}: settings.instances: applies to LoadGen scenarios and no matrix block has "
                          "scenarios = [...]")
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
SERVING_FIELDS = ("scenario", "load", "arrival", "latency_slo_ms", "ttft_slo_ms", "tpot_slo_ms", "instances")


def _serving_points(block: MatrixBlock, mode: str, st: Settings | None = None) -> list[tuple]:
    """(scenario, load, arrival, latency / TTFT / TPOT SLO, instances) of a block's
    cases in ``mode``: every scenario (a Server one at each of server_qps, or once for
    its capacity search), every request rate of generation under load, or one plain
    case. A serving case's SLOs and a LoadGen case's instances are the block's, else
    the settings' (``st``)."""
    slos = tuple(getattr(block, k) if getattr(block, k) is not None else getattr(st, k, None)
                 for k in ("latency_slo_ms", "ttft_slo_ms", "tpot_slo_ms"))
    if mode == "infer" and block.scenarios:  # judged by latency
        inst = block.instances or getattr(st, "instances", 1)
        return [(sc, q, "none", slos[0], None, None, inst) for sc in block.scenarios
                for q in ((block.server_qps or [None]) if sc == "server" else [None])]
    if mode == "generate" and block.request_rates:  # judged by TTFT and TPOT (MLPerf's LLM rules)
        return [("none", r, block.arrival or "poisson", None, *slos[1:], 1) for r in block.request_rates]
    return [("none", None, "none", None, None, None, 1)]


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
