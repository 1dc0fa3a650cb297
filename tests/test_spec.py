"""Suite loading: validation errors are one line naming file and field; expansion."""

import pytest

from hwbench.case import Case
from hwbench.errors import ConfigError
from hwbench.spec import load_suite, parse_suite
from conftest import ROOT

HEAD = '[suite]\nname = "x"\n'


def err(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse_suite(text, "s.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("s.toml: ")
    return msg


@pytest.mark.parametrize(
    "body,needle",
    [
        ('[[matrix]]\nmodels=["mlp:tin"]', "matrix[0].models[0]: unknown model 'mlp:tin' (did you mean 'mlp:tiny'?)"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\nprecisions=["fp33"]', "matrix[0].precisions[0]: 'fp33' is not allowed (did you mean 'fp32'?); allowed: fp32, tf32"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[0]', "matrix[0].batch_sizes[0]: must be an integer from 1 to"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes="8"', "matrix[0].batch_sizes: Input should be a valid list"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[2, "max"]', 'matrix[0].batch_sizes[1]: must be an integer from 1 to 4611686018427387904 or "auto", got \'max\''),
        ('[[matrix]]\nmodels=["mlp:tiny"]\ndevices=["cdua"]', "matrix[0].devices[0]: 'cdua' is not a device (did you mean 'cuda'?)"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\ndevices=["gpu"]', "matrix[0].devices[0]: 'gpu' is not a device (did you mean 'cuda'?)"),
        ('[[matrix]]\nmodels=[]', "matrix[0].models: List should have at least 1 item"),
        ("", "matrix: missing required field"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["generate"]', "model 'mlp:tiny' has no mode 'generate'; it supports infer, train"),
        ('[settings]\nmin_iters=5\nmax_iters=2\n[[matrix]]\nmodels=["mlp:tiny"]', "settings: max_iters (2) is smaller than min_iters (5)"),
        ('[settings]\nmin_tme_s=1\n[[matrix]]\nmodels=["mlp:tiny"]', "settings.min_tme_s: unknown key (did you mean 'min_time_s'?); allowed in settings:"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\nfoo=1', "matrix[0].foo: unknown key; allowed in matrix[0]: models"),
        ('[settings]\nmin_time_s="fast"\n[[matrix]]\nmodels=["mlp:tiny"]', "settings.min_time_s: Input should be a valid number"),
        ('[[matrix]]\nmodels=["encoder:tiny"]\nseq_lens=[4096]', "matrix[0].seq_lens: 4096 exceeds encoder:tiny's maximum sequence length 128"),
        ('[[matrix]]\nmodels=["cnn:tiny"]\nimage_sizes=[16]', "matrix[0].image_sizes: 16 is too small"),
        # a dimension no model of the block takes is an error, not a silent no-op
        ('[[matrix]]\nmodels=["mlp:tiny"]\nseq_lens=[128]', "matrix[0].seq_lens: no model of this block takes it (mlp:tiny); it applies to decoder, encoder"),
        ('[[matrix]]\nmodels=["encoder:tiny"]\nimage_sizes=[64]', "matrix[0].image_sizes: no model of this block takes it"),
        ('[[matrix]]\nmodels=["decoder:tiny"]\noutput_lens=[8]', "matrix[0].output_lens: applies to modes = [\"generate\"] only"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\ndevices=["cuda"]\nthreads=[2]', "matrix[0].threads: applies to CPU devices only"),
        ('[settings]\nmemory_limit_gb=0.001\n[[matrix]]\nmodels=["mlp:tiny"]', "settings.memory_limit_gb: Input should be greater than or equal to 1"),
        ('[settings]\nmemory_limit_gb=1e9\n[[matrix]]\nmodels=["mlp:tiny"]', "settings.memory_limit_gb: Input should be less than or equal to 65536"),
        ('[settings]\ncollectors=["host","gpu"]\n[[matrix]]\nmodels=["mlp:tiny"]', "settings.collectors[1]: 'gpu' is not allowed; allowed: host, nvidia, rapl"),
        ('[[matrix]]\nmodels=["mlp:tiny"]\nbackends=["inductor"]', "matrix[0].backends[0]: 'inductor' is not allowed; allowed: eager, compile, cudagraphs"),
    ],
)
def test_errors_name_file_field_and_allowed_values(body, needle):
    assert needle in err(HEAD + body)


def test_toml_syntax_error_has_line_number():
    assert "TOML syntax error" in err("[suite\n") and "line 1" in err("[suite\n")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such suite file"):
        load_suite(tmp_path / "nope.toml")


def test_expansion_order_ids_and_dedup():
    s = parse_suite(
        HEAD + '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nmodes=["infer","train"]\nbatch_sizes=[1,4]\n'
        '[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[1]\n'
    )
    ids = [c.case_id for c in s.cases]
    assert len(ids) == 8 == len(set(ids))
    assert ids[0] == "mlp:tiny/infer/bs1/fp32/eager/cpu"
    assert "encoder:tiny/train/bs4/seq32/fp32/eager/cpu" in ids


def test_case_is_frozen_hashable_and_roundtrips():
    c = Case("mlp:tiny", "infer", 1, "fp32", "eager", "cpu", threads=2)
    assert Case.from_dict(c.to_dict()) == c and hash(c) == hash(Case.from_dict(c.to_dict()))
    assert c.case_id.endswith("/t2")
    with pytest.raises(AttributeError):
        c.batch_size = 3  # type: ignore[misc]


def test_suite_hash_changes_with_content_only():
    a = parse_suite(HEAD + '[[matrix]]\nmodels=["mlp:tiny"]\n')
    b = parse_suite(HEAD + '\n# a comment\n[[matrix]]\nmodels = [ "mlp:tiny" ]\n')
    c = parse_suite(HEAD + '[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[2]\n')
    assert a.suite_hash == b.suite_hash != c.suite_hash


def test_a_mixed_block_applies_a_dimension_to_the_models_that_take_it():
    s = parse_suite(HEAD + '[[matrix]]\nmodels=["mlp:tiny","encoder:tiny"]\nseq_lens=[16]\n')
    assert [c.case_id for c in s.cases] == ["mlp:tiny/infer/bs1/fp32/eager/cpu", "encoder:tiny/infer/bs1/seq16/fp32/eager/cpu"]


def test_loading_a_suite_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom hwbench.spec import load_suite\nfor n in ('smoke', 'gpu', 'precision'):\n    load_suite(n)\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("path", sorted((ROOT / "suites").glob("*.toml")))
def test_shipped_suites_load(path):
    assert load_suite(path).cases


# ------------------------------------------------------------ bounds (issue 19, item 7)
from hwbench import spec as spec_mod  # noqa: E402
from hwbench.records import CaseIdentity  # noqa: E402

BIG = 2**62 + 1  # one past what a results record holds (records.Count)


def test_the_suite_bound_is_the_records_bound():
    """One source: the suite refuses exactly what a record cannot hold."""
    from pydantic import ValidationError

    base = dict(model="mlp:tiny", mode="infer", precision="fp32", backend="eager", device="cpu")
    CaseIdentity(**base, batch_size=spec_mod.COUNT_MAX)
    with pytest.raises(ValidationError):
        CaseIdentity(**base, batch_size=spec_mod.COUNT_MAX + 1)
    with pytest.raises(ValidationError):
        CaseIdentity(**{**base, "device": "cuda:" + "1" * spec_mod.DEVICE_NAME_MAX})
    assert parse_suite(HEAD + f'[[matrix]]\nmodels=["mlp:tiny"]\nbatch_sizes=[{spec_mod.COUNT_MAX}]', "s").cases


@pytest.mark.parametrize("key,body", [
    ("batch_sizes", f'models=["mlp:tiny"]\nbatch_sizes=[1, {BIG}]'),
    ("threads", f'models=["mlp:tiny"]\nthreads=[1, {BIG}]'),
    ("seq_lens", f'models=["encoder:tiny"]\nseq_lens=[1, {BIG}]'),
    ("image_sizes", f'models=["cnn:tiny"]\nimage_sizes=[64, {BIG}]'),
    ("output_lens", f'models=["decoder:tiny"]\nmodes=["generate"]\noutput_lens=[1, {BIG}]'),
])
def test_matrix_values_beyond_a_record_are_refused_at_load(key, body):
    msg = err(HEAD + "[[matrix]]\n" + body)
    assert f"matrix[0].{key}[1]: must be an integer from 1 to {2**62}" in msg and str(BIG) in msg


@pytest.mark.parametrize("key", ["warmup_iters", "min_iters", "max_iters", "repeats", "max_batch_size",
                                 "microbatches"])
def test_integer_settings_beyond_a_record_are_refused_at_load(key):
    msg = err(HEAD + f"[settings]\n{key} = {BIG}\n[[matrix]]\nmodels=[\"mlp:tiny\"]")
    assert f"settings.{key}: Input should be less than or equal to {2**62}" in msg


@pytest.mark.parametrize("key,value,bound", [
    ("sample_interval_s", "1e300", "604800"), ("timeout_s", "1e300", "604800"), ("idle_baseline_s", "1e12", "604800"),
    ("warmup_s", "1e300", "604800"), ("min_time_s", "1e300", "604800"), ("min_energy_window_s", "1e300", "604800"),
    ("cpu_tdp_w", "1e308", "10000"),
])
def test_durations_and_power_beyond_their_range_are_refused(key, value, bound):
    msg = err(HEAD + f"[settings]\n{key} = {value}\n[[matrix]]\nmodels=[\"mlp:tiny\"]")
    assert f"settings.{key}: Input should be less than or equal to {bound}" in msg


def test_absurd_world_sizes_are_refused_with_the_range():
    body = '[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nparallelism=["ddp"]\nworld_sizes=[2, {}]'
    assert "matrix[0].world_sizes[1]: must be an integer from 1 to 1048576, got 100000000000000000000" in \
        err(HEAD + body.format(10**20))
    assert parse_suite(HEAD + body.format(10000), "s").cases  # possible somewhere: skipped where it is not


@pytest.mark.parametrize("device", ["cuda:²", "cuda:٣", "cuda:-1", "cuda: 1", "mps:0", "cuda:" + "9" * 60])
def test_device_indexes_are_ascii_digits(device):
    assert "matrix[0].devices[0]: " in err(HEAD + f'[[matrix]]\nmodels=["mlp:tiny"]\ndevices=["{device}"]')


def test_device_names_parse():
    assert spec_mod.parse_device("cuda:3") == ("cuda", 3) and spec_mod.parse_device("xpu") == ("xpu", None)
    assert spec_mod.parse_device("cuda:²") is None and spec_mod.parse_device("cpu:0") is None


@pytest.mark.parametrize("body", [
    # families with their own shape dimension, and one with none
    '[[matrix]]\nmodels=["encoder:tiny","cnn:tiny","mlp:tiny"]\nseq_lens=[8,16,32]\nimage_sizes=[64,96]\n'
    'batch_sizes=[1,2]\nprecisions=["fp32","bf16"]',
    # output lengths multiply generate cases only
    '[[matrix]]\nmodels=["decoder:tiny"]\nmodes=["infer","generate","train"]\nseq_lens=[8,16]\noutput_lens=[2,4,8]',
    # 'none' runs at world size 1 only
    '[[matrix]]\nmodels=["encoder:tiny"]\nmodes=["train"]\nparallelism=["none","ddp","tp"]\nworld_sizes=[1,2,4]',
    '[[matrix]]\nmodels=["cnn:tiny"]\n[[matrix]]\nmodels=["decoder:tiny"]\nmodes=["generate"]\nthreads=[1,2]',
])
def test_the_case_count_is_the_expansions(body):
    s = parse_suite(HEAD + body, "s")
    assert sum(spec_mod.block_size(b) for b in s.spec.matrix) == len(s.cases)


def test_the_case_count_includes_repeated_values_as_the_expansion_meets_them():
    s = parse_suite(HEAD + '[[matrix]]\nmodels=["encoder:tiny","cnn:tiny"]\nbatch_sizes=[1,1]', "s")
    assert spec_mod.block_size(s.spec.matrix[0]) == 2 * len(s.cases) == 4


def test_a_block_mixing_families_cannot_slip_past_the_case_limit():
    seqs = ",".join(str(8 + i) for i in range(300))
    sizes = ",".join(str(64 + i) for i in range(300))
    body = f'[[matrix]]\nmodels=["encoder:tiny","cnn:tiny"]\nseq_lens=[{seqs}]\nimage_sizes=[{sizes}]\n' \
           f'batch_sizes=[{",".join(str(b) for b in range(1, 301))}]'
    assert "matrix: expands to more than 100000 cases (blocks 0 to 0: 180000)" in err(HEAD + body)


def test_a_suite_nested_5000_deep_is_one_line():
    assert "s.toml: not a suite file (TOML nested too deeply)" == err(HEAD.replace('"x"', "[" * 5000 + "]" * 5000))
    nested = HEAD + '[[matrix]]\nmodels=["mlp:tiny"]\nx = ' + "{a=" * 5000 + "1" + "}" * 5000
    assert "nested too deeply" in err(nested)


def test_text_beyond_a_record_is_refused_and_the_message_stays_short():
    msg = err(HEAD.replace('"x"', '"' + "x" * 100_001 + '"') + '[[matrix]]\nmodels=["mlp:tiny"]')
    assert msg.startswith("s.toml: suite.name: String should have at most 100000 characters") and len(msg) < 200
    msg = err(HEAD + '[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["' + "y" * 10_000 + '"]')
    assert msg.startswith("s.toml: matrix[0].modes[0]: 'yyy") and len(msg) < 200
