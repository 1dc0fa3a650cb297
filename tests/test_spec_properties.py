"""Property-based: random and mutated suite files give either a valid suite or a
ConfigError -- never another exception."""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwbench.errors import ConfigError
from hwbench.spec import parse_suite
from conftest import ROOT

VALID = (ROOT / "suites" / "smoke.toml").read_text()
KEYS = ["suite", "name", "description", "settings", "matrix", "models", "modes", "batch_sizes", "precisions",
        "backends", "devices", "threads", "seq_lens", "image_sizes", "warmup_iters", "min_time_s", "min_iters",
        "max_iters", "repeats", "timeout_s", "seed", "memory_limit_gb", "collectors", "sample_interval_s",
        "idle_baseline_s", "min_energy_window_s", "cpu_tdp_w", "noise_threshold", "per_core", "store_samples",
        "compile_mode", "max_batch_size", "check_accuracy", "count_flops", "output_lens", "variants", "x"]
WORDS = ["mlp:tiny", "encoder:base", "decoder:xl", "cnn:tiny", "infer", "train", "generate", "fp32", "bf16", "int8",
         "auto", "prune:0.5", "prune:x", "sparse24", "none", "default",
         "eager", "compile", "cpu", "cuda", "cuda:1", "auto", "mps", "cuda:x", "host", "nvidia", "", "mlp"]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.sampled_from(WORDS), st.text(max_size=5),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
tables = st.dictionaries(st.sampled_from(KEYS), values, max_size=6)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"').encode("unicode_escape").decode() + '"'
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def render(top: dict, sections: dict, blocks: list) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items() if k not in sections and k != "matrix"]
    for name, body in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
    for body in blocks:
        lines.append("[[matrix]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def check(text: str) -> None:
    try:
        parse_suite(text, "prop.toml")
    except ConfigError as e:
        assert str(e).startswith("prop.toml: ") and "\n" not in str(e)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=tables,
    sections=st.dictionaries(st.sampled_from(["suite", "settings"]), tables, max_size=2),
    blocks=st.lists(tables, max_size=3),
)
@pytest.mark.slow
def test_random_structured_suites(top, sections, blocks):
    check(render(top, sections, blocks))


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(
        st.fixed_dictionaries(
            {"models": st.lists(st.sampled_from(WORDS), min_size=0, max_size=3)},
            optional={
                "modes": st.lists(st.sampled_from(WORDS), max_size=3),
                "batch_sizes": st.lists(st.one_of(st.integers(-2, 2**40), st.just("auto")), max_size=3),
                "variants": st.lists(st.sampled_from(WORDS), max_size=2),
                "output_lens": st.lists(st.integers(-1, 2000), max_size=2),
                "precisions": st.lists(st.sampled_from(WORDS), max_size=3),
                "devices": st.lists(st.sampled_from(WORDS), max_size=3),
                "seq_lens": st.lists(st.integers(-1, 5000), max_size=2),
                "image_sizes": st.lists(st.integers(-1, 5000), max_size=2),
                "threads": st.lists(st.integers(-1, 64), max_size=2),
            },
        ),
        min_size=0, max_size=3,
    ),
    settings_=st.dictionaries(st.sampled_from(KEYS[14:]), scalars, max_size=4),
)
def test_nearly_valid_suites(blocks, settings_):
    check(render({}, {"suite": {"name": "p"}, "settings": settings_}, blocks))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_shipped_suite(data):
    text = VALID
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        chunk = data.draw(st.text(alphabet=string.printable, min_size=1, max_size=6))
        if op == "delete":
            text = text[:i] + text[i + len(chunk):]
        elif op == "insert":
            text = text[:i] + chunk + text[i:]
        else:
            text = text[:i] + chunk + text[i + len(chunk):]
    check(text)
