"""Grid carbon intensity by region (hwbench.carbon) from codecarbon's data files, and
``hwbench procure --region``: constructed data folders with known answers, the price
file's figure winning, and the one-line errors."""

import io
import json

import pandas as pd
import pytest

from hwbench import carbon
from hwbench.errors import UserError
from test_cost import EXAMPLE

PRICES = """
[defaults]
electricity_usd_per_kwh = 0.15
pue = 1.0
{carbon}
[[machine]]
match = "AMD EPYC*"
usd_per_hour = 0.8
source = "test rate"
date = 2026-10-15
"""


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A codecarbon-shaped data folder: two countries and one US state (lbs/MWh)."""
    root = tmp_path / "private_infra"
    (root / "2023").mkdir(parents=True)
    (root / "global_energy_mix.json").write_text(json.dumps({
        "FRA": {"country_name": "France", "carbon_intensity": 56.0, "year": 2023},
        "POL": {"country_name": "Poland", "carbon_intensity": 700.0, "year": 2022}}))
    (root / "2023" / "usa_emissions.json").write_text(json.dumps({
        "_source": {"name": "EPA eGRID2023", "year": 2023},
        "california": {"emissions": 1000.0, "regionCode": "CA"}}))
    monkeypatch.setattr(carbon, "data_root", lambda: (root, "9.9"))
    return root


def cli(*args):
    from click.testing import CliRunner

    from hwbench.cli import cli as group

    r = CliRunner().invoke(group, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_lookup_reads_countries_and_us_states_with_their_source_and_year(data):
    fra = carbon.lookup("fra")
    assert (fra.region, fra.name, fra.g_per_kwh, fra.year) == ("FRA", "France", 56.0, 2023)
    assert "codecarbon 9.9" in fra.source and "global_energy_mix.json" in fra.source
    ca = carbon.lookup("USA-CA")
    assert ca.g_per_kwh == pytest.approx(453.59237) and ca.year == 2023 and "eGRID2023" in ca.source
    with pytest.raises(UserError, match="--region FRX: unknown region .did you mean FRA.*--list-regions"):
        carbon.lookup("FRX")


def test_not_installed_names_the_extra(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r'pip install "hwbench\[carbon\]"'):
        carbon.data_root()


@pytest.mark.parametrize("given,expected", [("", 700.0), ("carbon_g_per_kwh = 123", 123.0)])
def test_procure_region_sets_the_intensity_unless_the_price_file_gives_one(tmp_path, data, given, expected):
    p = tmp_path / "p.toml"
    p.write_text(PRICES.format(carbon=given))
    rc, out, err = cli("procure", EXAMPLE, "--prices", p, "--region", "POL", "--format", "csv")
    assert rc == 0, err
    df = pd.read_csv(io.StringIO(out))
    assert (df["carbon_g_per_kwh"] == expected).all()
    ok = df["energy_kwh_per_1m_samples"].notna()
    assert ok.any()
    assert (df.loc[ok, "co2_g_per_1m_samples"] - df.loc[ok, "energy_kwh_per_1m_samples"] * expected).abs().max() < 1e-6
    rc, out, _ = cli("procure", EXAMPLE, "--prices", p, "--region", "POL")
    assert rc == 0 and "Carbon intensity: 700 gCO2e/kWh for POL (Poland, 2022; codecarbon 9.9" in out
    assert ("kept for" in out) == bool(given)
    assert max(map(len, out.splitlines())) <= 80


def test_unknown_region_and_list(tmp_path, data):
    p = tmp_path / "p.toml"
    p.write_text(PRICES.format(carbon=""))
    rc, out, err = cli("procure", EXAMPLE, "--prices", p, "--region", "ZZZ")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--list-regions" in err
    rc, out, _ = cli("procure", "--list-regions")
    assert rc == 0 and [ln.split()[0] for ln in out.splitlines()] == ["FRA", "POL", "USA-CA"]


def test_codecarbon_shipped_data_when_installed():
    try:
        root, version = carbon.data_root()
    except UserError:
        pytest.skip("codecarbon is not installed (hwbench[carbon])")
    table = carbon.regions(root)
    assert len(table) > 100 and 0 < table["FRA"][1] < 200 and table["USA"][2] >= 2020
