"""Hostile input (issue 19): options, hand-edited results files, price and mix files.
Every bad input is one line on stderr naming the argument or file and field, exit code
2, never a traceback; odd but valid input prints finite figures or says why not. The
CLI runs in this process (hwbench.cli.main, the console script's own path)."""

import json
import re

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"
TINY = ROOT / "tests" / "data" / "tiny.toml"


def main(capsys, *args):
    """(exit code, stdout, stderr) of the console script run in this process."""
    from hwbench.cli import main as console

    try:
        console([str(a) for a in args])
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(res, *needles) -> None:
    rc, _, err = res
    assert rc == 2, (rc, err[-2000:])
    assert "Traceback" not in err and err.count("\n") == 1, err[-2000:]
    for n in needles:
        assert n in err, err


# ------------------------------------------------------------------ 1. options
BAD_NUMBERS = [
    ("--threshold", "nan", "'nan' is not a finite number"),
    ("--threshold", "inf", "'inf' is not a finite number"),
    ("--threshold", "-1", "is not in the range 0<=x<=1000"),
    ("--alpha", "nan", "'nan' is not a finite number"),
    ("--alpha", "-inf", "is not a finite number"),
    ("--alpha", "0", "is not in the range"),
    ("--alpha", "1", "is not in the range"),
]


@pytest.mark.parametrize("cmd,option,value,needle", [
    (cmd, *bad) for cmd in ("compare", "history", "ab") for bad in BAD_NUMBERS
    if not (cmd == "history" and bad[0] == "--alpha")])  # history has no --alpha
def test_threshold_and_alpha_are_finite_and_in_range(capsys, cmd, option, value, needle):
    args = {"compare": [EXAMPLE, EXAMPLE], "history": [EXAMPLE], "ab": [TINY]}[cmd]
    one_line(main(capsys, cmd, *args, option, value), f"Invalid value for '{option}'", needle)


def test_ab_out_is_checked_like_the_other_commands(capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line(main(capsys, "ab", TINY, "--out", afile / "sub"), f"--out {afile}/sub: {afile} is a file, not a folder")
    one_line(main(capsys, "ab", TINY, "--out", "/proc/hwbench-x"), "--out /proc/hwbench-x: cannot write: ")


# ------------------------------------------------------------------ 2. hand-edited results files
PRICES = """
[[machine]]
match = "AMD EPYC*"
usd_per_hour = 0.8
source = "test rate"
date = 2026-10-15
"""


def edited(tmp_path, name, edit) -> str:
    """The example results file with ``edit(record_dict)`` applied, as a file path."""
    rec = json.loads(EXAMPLE.read_text())
    edit(rec)
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(rec))
    return str(p)


def each_case(key, field, value):
    def edit(rec):
        for c in rec["cases"]:
            if c.get(key):
                c[key][field] = value
    return edit


HOSTILE = {
    "noise_abc": (lambda r: r["suite"]["resolved"]["settings"].update(noise_threshold="abc"),
                  "suite.resolved.settings.noise_threshold: Input should be a valid number"),
    "noise_nan": (lambda r: r["suite"]["resolved"]["settings"].update(noise_threshold=-1),
                  "suite.resolved.settings.noise_threshold: Input should be greater than 0"),
    "settings_list": (lambda r: r["suite"]["resolved"].update(settings=[1, 2]),
                      "suite.resolved.settings: Input should be a valid dictionary"),
    "scaling": (lambda r: r["suite"]["resolved"]["settings"].update(scaling=7), "suite.resolved.settings.scaling"),
    "flops_huge": (each_case("facts", "flops_per_sample", 1e308), "cases[0].facts.flops_per_sample: Input should be"),
    "flops_counted": (each_case("facts", "flops_per_sample_counted", 1e300),
                      "cases[0].facts.flops_per_sample_counted: Input should be"),
    "times_denormal": (each_case("measurement", "raw_times_s", [[5e-324] * 3]),
                       "cases[0].measurement.raw_times_s[0][0]: Input should be greater than or equal to"),
    "times_huge": (each_case("measurement", "raw_times_s", [[1e300] * 3]),
                   "cases[0].measurement.raw_times_s[0][0]: Input should be less than or equal to"),
    "warmup_huge": (each_case("measurement", "warmup_s", 1e308), "cases[0].measurement.warmup_s: Input should be"),
    "energy_huge": (each_case("energy", "energy_j", 1e308), "cases[0].energy.energy_j: Input should be"),
}


@pytest.mark.parametrize("cmd", ["report", "compare", "history", "procure"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_results_files_are_one_line_naming_file_and_field(capsys, tmp_path, cmd, name):
    edit, needle = HOSTILE[name]
    path = edited(tmp_path, name, edit)
    prices = tmp_path / "p.toml"
    prices.write_text(PRICES)
    args = {"report": [path], "compare": [EXAMPLE, path], "history": [EXAMPLE, path],
            "procure": [path, "--prices", prices]}[cmd]
    one_line(main(capsys, cmd, *args), f"{path}: {needle}")


def test_extreme_but_valid_files_print_finite_or_inf_figures_in_80_columns(capsys, tmp_path, monkeypatch):
    def edit(rec):
        each_case("facts", "flops_per_sample", 1e24)(rec)
        each_case("facts", "flops_per_sample_counted", 1e24)(rec)
        each_case("measurement", "raw_times_s", [[1e-12] * 3, [1e-12, 2e-12, 1e-12]])(rec)
        each_case("energy", "energy_j", 1e15)(rec)
    path = edited(tmp_path, "extreme", edit)
    prices = tmp_path / "p.toml"
    prices.write_text(PRICES)
    monkeypatch.setenv("COLUMNS", "80")
    for args in (["report", path], ["report", path, "--format", "markdown"], ["compare", path, path],
                 ["history", EXAMPLE, path], ["procure", path, "--prices", prices]):
        rc, out, err = main(capsys, *args)
        assert rc == 0 and "Traceback" not in err, (args, err)
        if "markdown" not in args:
            assert max(map(len, out.splitlines())) <= 80, args


def test_formatters_never_raise_on_infinite_or_huge_values():
    from hwbench.report import format as fm

    inf = float("inf")
    assert fm.sig(inf) == "inf" and fm.sig(-inf) == "-inf" and fm.sig(float("nan")) == ""
    assert fm.sig(1e308) == "1.00e+308" and fm.sig(5e-324) == "4.94e-324"
    assert fm.sig(123456789012345.0) == "123456789012345" and fm.sig(0.001234) == "0.00123"
    for f in (fm.duration_ms, fm.duration_s, fm.si, fm.count, fm.rate, fm.energy_j, fm.power_w, fm.nbytes,
              fm.usd, fm.kwh, fm.grams, fm.hours, fm.flops, fm.plain, fm.percent, fm.pct, fm.mhz):
        assert f(inf).startswith("inf") and f(-inf).startswith("-inf"), f
        assert len(f(1e308)) <= 24 and len(f(5e-324)) <= 24, (f, f(1e308), f(5e-324))


# ------------------------------------------------------------------ 3. price and mix files
@pytest.mark.parametrize("lines,needle", [
    ("usd_per_hour = 1e308", "machine[0].usd_per_hour: Input should be less than or equal to 1000000"),
    ("price_usd = 1e308", "machine[0].price_usd: Input should be less than or equal to 1000000000"),
    ("price_usd = 3000\nrental_usd_per_hour = 1e308", "machine[0].rental_usd_per_hour: Input should be less"),
    ("usd_per_hour = 1\nelectricity_usd_per_kwh = 1e308", "machine[0].electricity_usd_per_kwh: Input should be"),
    ("price_usd = 1\ncarbon_g_per_kwh = 1e308", "machine[0].carbon_g_per_kwh: Input should be less"),
    ("usd_per_hour = inf", "machine[0].usd_per_hour: Input should be a finite number"),
    ("usd_per_hour = nan", "machine[0].usd_per_hour: Input should be a finite number"),
])
def test_price_file_numbers_are_bounded(capsys, tmp_path, lines, needle):
    p = tmp_path / "p.toml"
    p.write_text(f'[[machine]]\nmatch = "AMD EPYC*"\n{lines}\nsource = "x"\ndate = 2026-10-15\n')
    one_line(main(capsys, "procure", EXAMPLE, "--prices", p), f"{p}: {needle}")


@pytest.mark.parametrize("weight,needle", [
    ("0", "must be a positive number, got 0"), ("-1", "must be a positive number, got -1"),
    ("1e308", "got 1e+308 (allowed: above 0, up to 1e+09)"), ("inf", "Input should be a finite number"),
    ("nan", "Input should be a finite number"), ('"x"', "Input should be a valid number"),
])
def test_mix_weights_are_positive_and_bounded(capsys, tmp_path, weight, needle):
    p = tmp_path / "p.toml"
    p.write_text(PRICES)
    m = tmp_path / "mix.toml"
    m.write_text(f'[weights]\n"mlp:*" = {weight}\n"cnn:*" = 1\n')
    one_line(main(capsys, "procure", EXAMPLE, "--prices", p, "--mix", m), f"{m}: weights", needle)


def test_prices_at_their_bounds_print_figures_in_80_columns(capsys, tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[defaults]\nelectricity_usd_per_kwh = 1000\ncarbon_g_per_kwh = 10000\n'
                 '[[machine]]\nmatch = "AMD EPYC*"\nprice_usd = 1e9\nrental_usd_per_hour = 1e6\n'
                 'source = "x"\ndate = 2026-10-15\n')
    m = tmp_path / "mix.toml"
    m.write_text('[weights]\n"mlp:*" = 1e9\n"cnn:*" = 1e-300\n')
    rc, out, err = main(capsys, "procure", EXAMPLE, "--prices", p, "--mix", m)
    assert rc == 0 and "Traceback" not in err, err
    assert max(map(len, out.splitlines())) <= 80
    assert not re.search(r"\b(nan|inf)\b", out), out


# ------------------------------------------------------------------ 4. probe devices: one parser
def test_probe_resolves_devices_with_the_spec_parser():
    from hwbench.errors import UserError
    from hwbench.probe import resolve_devices

    assert resolve_devices(["cpu", "cpu"]) == ["cpu"]
    for bad in ("cuda:²", "cuda:٣", "cuda:-1", "cuda:", "CPU", "gpu", "cuda:" + "9" * 400):
        with pytest.raises(UserError, match=r"^--device .*: not one of cpu, cuda, cuda:N, rocm, rocm:N$"):
            resolve_devices([bad])
    with pytest.raises(UserError, match=r"^--device cuda:9999: no such CUDA device here \(\d+ visible\)$"):
        resolve_devices(["cuda:9999"])


# ------------------------------------------------------------------ 5. cores: one definition
def test_cpu_group_threads_come_from_usable_cores(tmp_path, monkeypatch, fake_launcher):
    from conftest import run_suite
    from hwbench import runner

    monkeypatch.setattr(runner, "usable_cores", lambda: 8)
    seen = []
    real = fake_launcher.run_group

    def run_group(case, settings, **kw):
        seen.append((case.world_size, kw.get("threads")))
        return real(case, settings, **kw)

    monkeypatch.setattr(fake_launcher, "run_group", run_group)
    body = ('[[matrix]]\nmodels = ["encoder:tiny"]\nmodes = ["train"]\nbatch_sizes = [4]\n'
            'parallelism = ["ddp"]\nworld_sizes = [2]\n')
    rows, _ = run_suite(tmp_path, body, launcher=fake_launcher)
    assert seen == [(2, 4)]  # 8 usable cores shared by 2 ranks


# ------------------------------------------------------------------ 6. hunted
PARALLEL = ROOT / "results" / "examples" / "parallel-cpu-amd-epyc-2cores.json"


def test_compare_of_two_suites_without_a_common_case_is_nothing_to_compare(capsys):
    one_line(main(capsys, "compare", EXAMPLE, PARALLEL),
             "nothing to compare: no case ran in both (suites 'smoke' and 'parallel-cpu')")


def test_compare_of_different_suites_warns_and_shows_unset_settings_as_dashes(capsys, tmp_path):
    other = edited(tmp_path, "other", lambda r: (r["suite"].update(name="other"), r.update(run_id="other"),
                                                 r["suite"]["resolved"]["settings"].pop("noise_threshold")))
    rc, out, err = main(capsys, "compare", EXAMPLE, other)
    assert rc == 0, err
    assert "warning: BASELINE and NEW ran different suites ('smoke', 'other')" in err
    assert "settings.noise_threshold: 0.1 -> -" in out and not re.search(r"\bnan\b", out)


def test_history_over_one_run_claims_no_trend(capsys):
    rc, out, err = main(capsys, "history", EXAMPLE)
    assert rc == 0, err
    assert out.startswith("hwbench history: 1 run, 41 cases") and "one run: no trend or change point" in out
    assert "(+0.0 %)" not in out and "over 1 runs" not in out and "(one run: no trend)" in out
    rc, out, _ = main(capsys, "history", EXAMPLE, "--format", "markdown")
    assert rc == 0 and "| one run |" in out and "+0.0 %" not in out


def test_names_with_escapes_and_bidi_overrides_are_cleaned_and_fit_80_columns(capsys, tmp_path, monkeypatch):
    def edit(r):
        r["cases"][0]["case_id"] = "\x1b[31mRED\u202e|`*x*`<b>\n" + "é" * 100 + r["cases"][0]["case_id"]
        r["cases"][0]["case"]["model"] = "mlp:t|`\x1b" + "ü" * 150
        r["cases"][0]["device_name"] = "AMD\x1b[2J|x\n"
        r["segments"][0]["environment"]["hostname"] = "h\x1b]0;x\x07|`\n" * 20
    path = edited(tmp_path, "names", edit)
    prices = tmp_path / "p.toml"
    prices.write_text(PRICES)
    monkeypatch.setenv("COLUMNS", "80")
    for args in (["report", path], ["report", path, "--view", "scaling"], ["report", path, "--view", "tradeoffs"],
                 ["compare", EXAMPLE, path, "--allow-different-hardware"], ["history", path],
                 ["procure", path, "--prices", prices, "--skip-unpriced"]):
        rc, out, err = main(capsys, *args)
        assert rc == 0, (args, err)
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", out + err), args
        assert max(map(len, out.splitlines())) <= 80, args
