"""Price files, mix files and the shipped catalogue: strict validation with one-line
errors naming the file and the field; the catalogue's rows each have a source and a
date, and its globs match the device names NVML reports (and not their neighbours)."""

import csv
import io
from importlib import resources

import pytest

from hwbench.errors import ConfigError
from hwbench.prices import (CATALOGUE_COLUMNS, load_catalogue, load_mix, load_prices, parse_catalogue, parse_mix,
                            parse_prices)

import tomllib

GOOD = """
[defaults]
electricity_usd_per_kwh = 0.2
pue = 1.2

[[machine]]
match = "NVIDIA H100*"
price_usd = 30000
rental_usd_per_hour = 2.5
source = "vendor quote"
date = 2026-10-15

[[machine]]
match = "AMD EPYC*"
usd_per_hour = 1.5
source = "cloud page"
date = "2026-10"
pue = 1.1
"""


def prices(text: str, path: str = "p.toml"):
    return parse_prices(tomllib.loads(text), path)


def test_good_file_resolves_defaults_per_machine_and_remembers_what_was_assumed():
    spec = prices(GOOD)
    own, rent = spec.prices
    assert own.basis == "own" and rent.basis == "rent"
    assert own.site.electricity_usd_per_kwh == 0.2 and own.site.pue == 1.2
    assert rent.site.pue == 1.1  # the machine's override
    assert own.site.carbon_g_per_kwh == 400 and own.site.lifetime_years == 4 and own.site.utilization == 0.8
    assert set(spec.defaults_assumed) == {"carbon_g_per_kwh", "lifetime_years", "utilization"}
    assert own.machine.date == "2026-10-15" and rent.machine.date == "2026-10"
    assert own.ref == "p.toml machine[0]"
    assert not own.assumption


def test_lookup_is_a_case_insensitive_glob_first_match_wins_and_basis_filters():
    spec = prices(GOOD)
    assert spec.lookup("NVIDIA H100 80GB HBM3").machine.match == "NVIDIA H100*"
    assert spec.lookup("nvidia h100 pcie").machine.match == "NVIDIA H100*"
    assert spec.lookup("AMD EPYC 9654 96-Core Processor").basis == "rent"
    assert spec.lookup("NVIDIA A100-SXM4-80GB") is None
    assert spec.lookup(None) is None
    assert spec.lookup("NVIDIA H100 80GB HBM3", "rent") is None
    assert spec.lookup("AMD EPYC 9654", "own") is None


@pytest.mark.parametrize("mutate,needle", [
    (lambda t: t.replace('source = "vendor quote"\n', ""), "p.toml: machine[0].source: missing required field"),
    (lambda t: t.replace("price_usd = 30000", "price_usd = 30000\nusd_per_hour = 2.0"),
     "p.toml: machine[0]: give exactly one of price_usd (owning) or usd_per_hour (renting)"),
    (lambda t: t.replace("usd_per_hour = 1.5\n", ""), "p.toml: machine[1]: give exactly one of price_usd"),
    (lambda t: t.replace("price_usd = 30000", "price_uds = 30000"),
     "p.toml: machine[0].price_uds: unknown key (did you mean 'price_usd'?); allowed in machine[0]: match, name, "
     "price_usd"),
    (lambda t: t.replace("pue = 1.2", "pue = 0.9"), "p.toml: defaults.pue: Input should be greater than or equal to 1"),
    (lambda t: t.replace("pue = 1.2", "pue = \"high\""), "p.toml: defaults.pue: Input should be a valid number"),
    (lambda t: t.replace("date = 2026-10-15", 'date = "last week"'),
     "p.toml: machine[0].date: must be a date YYYY-MM-DD or YYYY-MM, got 'last week'"),
    (lambda t: t.replace("usd_per_hour = 1.5", "usd_per_hour = -1"),
     "p.toml: machine[1].usd_per_hour: Input should be greater than 0"),
    (lambda t: t.replace('usd_per_hour = 1.5', 'usd_per_hour = 1.5\nrental_usd_per_hour = 2'),
     "p.toml: machine[1]: rental_usd_per_hour applies to an owned machine (price_usd) only"),
    (lambda t: t + "\n[defaults2]\n",
     "p.toml: defaults2: unknown key (did you mean 'defaults'?); allowed in the top level: defaults, machine"),
    (lambda t: t.replace('source = "cloud page"', 'source = "   "'), "p.toml: machine[1].source: must name where"),
])
def test_invalid_price_files_are_one_line_errors_naming_file_and_field(mutate, needle):
    with pytest.raises(ConfigError) as e:
        prices(mutate(GOOD))
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg


def test_no_machine_and_syntax_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^p.toml: machine: missing required field$"):
        prices("[defaults]\npue = 1.2\n")
    p = tmp_path / "bad.toml"
    p.write_text("[[machine]\n")
    with pytest.raises(ConfigError, match=r"bad.toml: TOML syntax error"):
        load_prices(p)
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read price file"):
        load_prices(tmp_path / "nope.toml")


def test_mix_files():
    mix = parse_mix(tomllib.loads('[mix]\nname = "m"\n[weights]\n"a/*" = 50\n"b/*" = 30.5\n'), "mix.toml")
    assert mix.name == "m" and mix.weights == (("a/*", 50.0), ("b/*", 30.5))
    for text, needle in [
        ('[weights]\n"a" = 0\n', "mix.toml: weights['a']: must be a positive number, got 0"),
        ('[weights]\n"a" = "x"\n', "mix.toml: weights.a: Input should be a valid number"),
        ('[weights]\n', "mix.toml: weights: Dictionary should have at least 1 item"),
        ('[mix]\nnam = "x"\n[weights]\n"a" = 1\n', "mix.toml: mix.nam: unknown key (did you mean 'name'?); allowed in mix: name, description"),
    ]:
        with pytest.raises(ConfigError) as e:
            parse_mix(tomllib.loads(text), "mix.toml")
        assert needle in str(e.value) and "\n" not in str(e.value)


def test_load_mix_reads_a_file(tmp_path):
    p = tmp_path / "mix.toml"
    p.write_text('[weights]\n"x" = 1\n')
    assert load_mix(p).weights == (("x", 1.0),)


# ------------------------------------------------------------------ the catalogue
def test_catalogue_every_row_has_exactly_one_price_a_source_and_a_date():
    text = resources.files("hwbench.data").joinpath("prices.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0].keys()) == CATALOGUE_COLUMNS
    for r in rows:
        assert bool(r["price_usd"]) != bool(r["usd_per_hour"]), r
        assert r["source"].strip() and r["date"], r
    spec = load_catalogue()
    assert spec.catalogue and all(p.assumption for p in spec.prices)
    assert len(spec.prices) == len(rows)
    assert set(spec.defaults_assumed) == {"electricity_usd_per_kwh", "pue", "carbon_g_per_kwh", "lifetime_years",
                                          "utilization"}
    assert load_prices("catalog").prices == spec.prices


@pytest.mark.parametrize("device,expect", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA H200 NVL", None),  # lower clocks: not priced as an H200 SXM
    ("NVIDIA GH200 480GB", None),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
    ("NVIDIA A100-SXM4-40GB", "A100 SXM4 40GB"),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
    ("NVIDIA L4", "L4 24GB"),
    ("NVIDIA L40S", "L40S"),
    ("NVIDIA L40", None),  # not an L4, not an L40S
    ("AMD Instinct MI300X", "MI300X"),
    ("AMD Instinct MI300X OAM", "MI300X"),
    ("Intel(R) Xeon(R) Platinum 8480+", "Xeon 4th gen"),
    ("AMD EPYC 7742 64-Core Processor", "EPYC 2nd gen"),
    ("AMD EPYC 9654 96-Core Processor", None),
])
def test_catalogue_globs_match_nvml_names_and_not_their_neighbours(device, expect):
    p = load_catalogue().lookup(device)
    if expect is None:
        assert p is None
    else:
        assert p is not None and p.machine.name.startswith(expect)


def test_catalogue_rent_lines_come_first_and_own_lines_compare_with_them():
    spec = load_catalogue()
    dev = "NVIDIA H100 80GB HBM3"
    assert spec.lookup(dev).basis == "rent"
    own = spec.lookup(dev, "own")
    assert own.machine.price_usd == 30000
    rental, source = spec.rental_for(own, dev)
    assert rental == 6.88 and "p5.48xlarge" in source


def test_catalogue_errors_name_the_row():
    head = ",".join(CATALOGUE_COLUMNS)
    with pytest.raises(ConfigError, match=r"^c.csv: row 2: usd_per_hour: not a number"):
        parse_catalogue(f"{head}\nX,x,,cheap,src,2026-01-01\n", "c.csv")
    with pytest.raises(ConfigError, match=r"^c.csv: row 3: source: missing required field|^c.csv: row 3: source"):
        parse_catalogue(f"{head}\nX,x,,1,src,2026-01-01\nY,y,,1,,2026-01-01\n", "c.csv")
    with pytest.raises(ConfigError, match=r"^c.csv: header must be"):
        parse_catalogue("match,price\nX,1\n", "c.csv")
