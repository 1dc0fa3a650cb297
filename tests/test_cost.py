"""Cost, energy and carbon per case, the ranking of machines, and the training
projection (hwbench.analysis.cost).

Every figure is checked against the formulas of docs/procurement.md recomputed here, independently,
from the columns of ``load_results`` and the numbers written in the price file -- never
by calling the code under test. The ranking is checked on constructed results with a
known answer, the training projection against published figures (GPT-3's and Llama 2
70B's training compute, GPU-hours and emissions)."""

import math

import pytest

from hwbench import load_results
from hwbench.analysis import cost
from hwbench.prices import load_catalogue, parse_mix, parse_prices
from hwbench.records import (CaseIdentity, CaseResult, Energy, Environment, Facts, Flag, Measurement, RunRecord,
                             Segment, SuiteRef)
from hwbench.results import write_atomic
from conftest import ROOT

import tomllib

EXAMPLE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"

OWN = """
[defaults]
electricity_usd_per_kwh = 0.12
pue = 1.25
carbon_g_per_kwh = 350
lifetime_years = 5
utilization = 0.7

[[machine]]
match = "AMD EPYC*"
price_usd = 9000
rental_usd_per_hour = 1.1
source = "test quote"
date = 2026-10-15
"""

RENT = """
[defaults]
carbon_g_per_kwh = 200

[[machine]]
match = "amd epyc*"
usd_per_hour = 0.77
pue = 1.4
source = "test rate"
date = "2026-10"
"""


def spec(text: str, name: str):
    return parse_prices(tomllib.loads(text), name)


# ------------------------------------------------------------------ the bar: formulas on a real file
@pytest.mark.parametrize("kind", ["own", "rent"])
def test_every_figure_equals_the_formulas_on_a_real_results_file(kind):
    df = load_results(EXAMPLE)
    ok = df[df["status"] == "ok"]
    assert len(ok) >= 30  # the committed example: every case of the smoke suite ran
    frame, skipped = cost.price_cases(df, spec(OWN if kind == "own" else RENT, f"{kind}.toml"))
    assert skipped == []
    got = frame.set_index("case_id")
    for r in ok.to_dict("records"):
        g = got.loc[r["case_id"]]
        thr, power, eps = r["throughput_samples_per_s"], r["power_w_mean"], r["energy_per_sample_j"]
        if kind == "own":
            pue, elec, carbon, life, util = 1.25, 0.12, 350, 5, 0.7
            usd_h = 9000 / (life * 8760 * util) + power / 1000 * pue * elec
            assert g["break_even_utilization"] == pytest.approx(9000 / (life * 8760 * (1.1 - power / 1000 * pue * elec)))
        else:
            pue, carbon, life, util = 1.4, 200, 4, 0.8  # pue: the machine's; lifetime, utilisation: hwbench's defaults
            usd_h = 0.77
            assert math.isnan(g["break_even_utilization"])
        assert g["usd_per_hour"] == pytest.approx(usd_h, rel=1e-12)
        assert g["cost_usd_per_1m_samples"] == pytest.approx(usd_h * 1e6 / (thr * 3600), rel=1e-12)
        assert g["energy_kwh_per_1m_samples"] == pytest.approx(eps * 1e6 / 3.6e6 * pue, rel=1e-12)
        assert g["co2_g_per_1m_samples"] == pytest.approx(eps * 1e6 / 3.6e6 * pue * carbon, rel=1e-12)
        assert g["samples_per_usd"] == pytest.approx(thr * 3600 / usd_h, rel=1e-12)
        assert g["samples_per_j"] == pytest.approx(1 / eps, rel=1e-12)
        assert g["tco_usd"] == pytest.approx(usd_h * life * 8760 * util, rel=1e-12)
        tok = r["tokens_per_s"]
        if math.isnan(tok):  # not a generation case
            assert math.isnan(g["cost_usd_per_1m_tokens"])
        else:
            assert g["cost_usd_per_1m_tokens"] == pytest.approx(usd_h * 1e6 / (tok * 3600), rel=1e-12)
        # the example's CPU energy is estimated (no RAPL): every figure derived from it says so
        assert r["energy_source"] == "estimated"
        assert "energy_estimated" in g["quality_flags"]
        est = set(g["estimated_columns"].split(","))
        assert {"energy_kwh_per_1m_samples", "co2_g_per_1m_samples", "samples_per_j"} <= est
        cost_cols = {"usd_per_hour", "cost_usd_per_1m_samples", "samples_per_usd", "tco_usd"}
        assert (cost_cols <= est) if kind == "own" else not (cost_cols & est)
        assert g["price_ref"] == f"{kind}.toml machine[0]" and g["price_source"].startswith("test")


def test_unpriced_device_is_one_line_naming_device_and_file_unless_skipped():
    df = load_results(EXAMPLE)
    with pytest.raises(cost.UnpricedError) as e:
        cost.price_cases(df, spec(RENT.replace("amd epyc*", "Intel*"), "rent.toml"))
    msg = str(e.value)
    assert msg.startswith("rent.toml: no price for device 'AMD EPYC'") and "\n" not in msg
    frame, skipped = cost.price_cases(df, spec(RENT.replace("amd epyc*", "Intel*"), "rent.toml"), skip_unpriced=True)
    assert skipped == ["AMD EPYC"] and frame.empty
    with pytest.raises(cost.UnpricedError, match=r"^rent.toml: no price \(own basis\) for device 'AMD EPYC'"):
        cost.price_cases(df, spec(RENT, "rent.toml"), basis="own")
    with pytest.raises(cost.UnpricedError, match=r"^hwbench/data/prices.csv: no price for device 'AMD EPYC'"):
        cost.price_cases(df, load_catalogue())


def test_owning_formulas_and_break_even_edges():
    # 30000 USD over 4 years at 80 %: 30000 / 28032 h; 700 W at PUE 1.3 and 0.15 USD/kWh: 0.1365 USD/h
    assert cost.usd_per_hour_owning(30000, 4, 0.8, 700, 1.3, 0.15) == pytest.approx(30000 / 28032 + 0.1365)
    # renting at 2.5 USD/h: owning wins above 30000 / (35040 * (2.5 - 0.1365)) of the hours
    assert cost.break_even_utilization(30000, 4, 2.5, 700, 1.3, 0.15) == pytest.approx(30000 / (35040 * 2.3635))
    assert math.isnan(cost.break_even_utilization(30000, 4, 0.1, 700, 1.3, 0.15))  # rent never covers the energy
    assert cost.break_even_utilization(300000, 1, 2.5, 0, 1, 0) > 1  # owning never pays within the lifetime


# ------------------------------------------------------------------ constructed results
def case(model, mode, latency_s, *, device_name, power_w=100.0, status="ok", bs=1, precision="bf16", flops=1e9,
         params=1000, threads=None, gen_tokens=None, source="nvml_counter", flags=()):
    parts = [model, mode, f"bs{bs}"] + ([f"seq8+gen{gen_tokens}"] if gen_tokens else []) + [precision, "eager", "cuda"]
    if threads:
        parts.append(f"t{threads}")
    ident = CaseIdentity(model=model, mode=mode, batch_size=bs, precision=precision, backend="eager", device="cuda",
                         threads=threads, gen_tokens=gen_tokens, seq_len=8 if gen_tokens else None)
    if status != "ok":
        return CaseResult(case_id="/".join(parts), case=ident, status=status, reason="not supported here",
                          device_name=device_name)
    n = 5
    return CaseResult(
        case_id="/".join(parts), case=ident, status="ok", device_name=device_name, device_resolved="cuda:0",
        measurement=Measurement(raw_times_s=[[latency_s] * n], first_iter_s=latency_s, warmup_s=latency_s,
                                measured_s=latency_s * n),
        facts=Facts(params=params, flops_per_sample=flops),
        energy=Energy(energy_j=power_w * latency_s * n, energy_source=source, energy_window_s=latency_s * n),
        flags=[Flag(flag=f) for f in flags],
    )


def write(tmp_path, host: str, cases) -> None:
    rec = RunRecord(run_id=host, created="2026-11-25T00:00:00+00:00", status="complete",
                    suite=SuiteRef(name="s", path="s.toml", hash="abc", resolved={}),
                    segments=[Segment(index=0, started="x", environment=Environment(hostname=host))], cases=cases)
    write_atomic(tmp_path / f"{host}.json", rec)


TWO_MACHINES = """
[[machine]]
match = "GPU-A"
usd_per_hour = 2.0
source = "A's rate"
date = 2026-11-01

[[machine]]
match = "GPU-B"
usd_per_hour = 1.0
source = "B's rate"
date = 2026-11-02
"""

MIX = """
[mix]
name = "known"
[weights]
"mlp:*" = 50
"encoder:*" = 30
"cnn:*" = 20
"nothing:*" = 10
"""


def two_machines(tmp_path):
    a = "GPU-A"
    write(tmp_path, "hostA", [
        case("mlp:tiny", "infer", 0.001, device_name=a, power_w=100),  # 1000 samples/s, 10 samples/J
        case("encoder:tiny", "infer", 0.010, device_name=a, power_w=100),  # 100 /s, 1 /J
        case("cnn:tiny", "train", 0.100, device_name=a, power_w=100),  # 10 /s, 0.1 /J
    ])
    b = "GPU-B"
    write(tmp_path, "hostB", [
        case("mlp:tiny", "infer", 0.002, device_name=b, power_w=50),  # 500 /s, 10 /J
        case("mlp:tiny", "infer", 0.004, device_name=b, power_w=50, threads=1),  # slower: not the one used
        case("encoder:tiny", "infer", 0.005, device_name=b, power_w=50),  # 200 /s, 4 /J
        case("cnn:tiny", "train", 0.1, device_name=b, status="skipped"),  # could not run
    ])
    return load_results(tmp_path)


def test_ranking_of_two_machines_with_a_mix_has_the_known_answer(tmp_path):
    df = two_machines(tmp_path)
    frame, _ = cost.price_cases(df, spec(TWO_MACHINES, "prices.toml"))
    mix = parse_mix(tomllib.loads(MIX), "mix.toml")
    rk, notes = cost.rank_machines(frame, mix, "perf_per_usd")
    assert notes == ["mix.toml: weights.'nothing:*' matches no case in these results; its weight is left out"]
    # weights 50 : 30 : 20 -> 0.5, 0.3, 0.2 ("nothing:*" dropped)
    w1, w2, w3 = 0.5, 0.3, 0.2
    # A: throughput 1000, 100, 10 at 2 USD/h; B: 500, 200, - at 1 USD/h. Best per case: 1000, 200, 10.
    # samples per USD: A 1.8e6, 1.8e5, 1.8e4; B 1.8e6, 7.2e5. Samples per J: A 10, 1, 0.1; B 10, 4.
    a_thr = math.exp(w1 * math.log(1.0) + w2 * math.log(100 / 200) + w3 * math.log(1.0))
    b_thr = math.exp((w1 * math.log(500 / 1000) + w2 * math.log(1.0)) / (w1 + w2))
    a_usd = math.exp(w2 * math.log(1.8e5 / 7.2e5))
    a_w = math.exp(w2 * math.log(1 / 4))
    a_cost = math.exp(w1 * math.log(2e6 / (1000 * 3600)) + w2 * math.log(2e6 / (100 * 3600))
                      + w3 * math.log(2e6 / (10 * 3600)))
    b_cost = math.exp((w1 * math.log(1e6 / (500 * 3600)) + w2 * math.log(1e6 / (200 * 3600))) / (w1 + w2))
    assert list(rk["machine"]) == ["GPU-B @ hostB", "GPU-A @ hostA"]  # B gives more samples per dollar
    b, a = rk.to_dict("records")
    assert (b["rank"], a["rank"]) == (1, 2)
    assert a["throughput_norm"] == pytest.approx(a_thr) and b["throughput_norm"] == pytest.approx(b_thr)
    assert a["perf_per_usd_norm"] == pytest.approx(a_usd) and b["perf_per_usd_norm"] == pytest.approx(1.0)
    assert a["perf_per_w_norm"] == pytest.approx(a_w) and b["perf_per_w_norm"] == pytest.approx(1.0)
    assert a["cost_usd_per_1m_samples"] == pytest.approx(a_cost) and b["cost_usd_per_1m_samples"] == pytest.approx(b_cost)
    assert a["cases_not_run"] == [] and a["weight_covered"] == pytest.approx(1.0)
    assert b["cases_not_run"] == ["cnn:tiny/train/bs1/bf16/eager (skipped)"]
    assert b["weight_covered"] == pytest.approx(0.8) and b["cases_run"] == 2
    assert a["price_sources"] == ["prices.toml machine[0]: A's rate (2026-11-01)"]
    assert b["price_sources"] == ["prices.toml machine[1]: B's rate (2026-11-02)"]
    assert not a["energy_estimated"] and a["quality_flags"] == []
    assert str(tmp_path / "hostA.json") in a["results_files"][0]
    # other orders
    by_speed, _ = cost.rank_machines(frame, mix, "throughput")
    assert list(by_speed["machine"]) == ["GPU-A @ hostA", "GPU-B @ hostB"]
    by_cost, _ = cost.rank_machines(frame, mix, "cost")
    assert list(by_cost["machine"]) == ["GPU-B @ hostB", "GPU-A @ hostA"]


def test_ranking_without_a_mix_weighs_every_case_alike(tmp_path):
    frame, _ = cost.price_cases(two_machines(tmp_path), spec(TWO_MACHINES, "prices.toml"))
    rk, notes = cost.rank_machines(frame, None, "throughput")
    a = rk.set_index("machine").loc["GPU-A @ hostA"]
    assert notes == []
    assert a["throughput_norm"] == pytest.approx(math.exp(math.log(0.5) / 3))


def test_estimated_energy_and_generation_tokens(tmp_path):
    write(tmp_path, "h", [
        case("decoder:tiny", "generate", 0.02, device_name="GPU-A", bs=2, gen_tokens=4, power_w=80,
             source="estimated", flags=("energy_estimated",)),
    ])
    df = load_results(tmp_path)
    own = TWO_MACHINES.replace('usd_per_hour = 2.0', 'price_usd = 10000')
    frame, _ = cost.price_cases(df, spec(own, "p.toml"))
    r = frame.iloc[0]
    row = df.iloc[0]
    usd_h = 10000 / (4 * 8760 * 0.8) + row["power_w_mean"] / 1000 * 1.3 * 0.15
    assert row["tokens_per_s"] == pytest.approx(2 * 4 / 0.02)
    assert r["cost_usd_per_1m_tokens"] == pytest.approx(usd_h * 1e6 / (row["tokens_per_s"] * 3600))
    assert r["cost_usd_per_1m_samples"] == pytest.approx(usd_h * 1e6 / (row["throughput_samples_per_s"] * 3600))
    assert "cost_usd_per_1m_tokens" in r["estimated_columns"].split(",")  # owned: the price includes the energy
    # the rental price for break-even comes from the renting line of the same file
    assert r["rental_usd_per_hour"] is None or math.isnan(r["rental_usd_per_hour"])  # GPU-A has no renting line now
    rk, _ = cost.rank_machines(frame, None)
    assert rk.iloc[0]["energy_estimated"]
    assert set(rk.iloc[0]["estimated_columns"].split(",")) >= {"perf_per_w_norm", "perf_per_usd_norm"}


# ------------------------------------------------------------------ training projection
def test_target_params_from_the_registry():
    assert cost.target_params("decoder:xl")[1] == 1557611200
    assert cost.target_params("moe:8x7b")[1] == 12879925248  # the active parameters per token
    assert cost.target_params("llama", 70e9)[1] == 70e9
    for bad in ("nope:1", "decoder", "decoder:huge"):
        with pytest.raises(Exception) as e:
            cost.target_params(bad)
        assert "\n" not in str(e.value)


def test_training_compute_is_6ND_as_published_for_gpt3(tmp_path):
    # GPT-3 175B on 300B tokens: Brown et al. 2020, table D.1: 3.64e3 PF-days = 3.14e23 FLOPs
    write(tmp_path, "h", [case("decoder:tiny", "train", 0.01, device_name="GPU-A", flops=1e12)])
    frame, _ = cost.price_cases(load_results(tmp_path), spec(TWO_MACHINES, "p.toml"))
    tr, assumptions = cost.project_training(frame, "decoder", 300e9, 1, params=175e9)
    assert tr.iloc[0]["train_flops"] == pytest.approx(3.14e23, rel=0.01)
    assert tr.iloc[0]["achieved_tflops"] == pytest.approx(1e12 / 0.01 / 1e12)
    assert "6·N·D" in assumptions[0]


def test_training_projection_reproduces_llama2_70b_gpu_hours_and_emissions(tmp_path):
    """Llama 2 70B (Touvron et al. 2023, table 2): 2.0T tokens, 1,720,320 GPU-hours on
    A100-80GB at 400 W, 291.42 tCO2eq. Stated assumptions: 6·N·D FLOPs with N = 70e9;
    the MFU those hours imply on the A100's 312 TFLOP/s bf16 peak; 400 W per GPU, PUE
    1.0 and the carbon intensity the paper's figures imply (291.42 t / 688,128 kWh)."""
    n, d, hours_pub, co2_t_pub = 70e9, 2.0e12, 1_720_320, 291.42
    mfu = 6 * n * d / (hours_pub * 3600 * 312e12)
    assert mfu == pytest.approx(0.435, abs=0.001)
    intensity = co2_t_pub * 1e6 / (hours_pub * 0.4)
    # one measured training step of the llama family at that MFU: 1 sample of F FLOPs per second
    write(tmp_path, "rsc", [case("llama:1b", "train", 1.0, device_name="NVIDIA A100-SXM4-80GB", flops=mfu * 312e12,
                                 power_w=400, params=1235814400)])
    prices = f"""
[defaults]
pue = 1.0
carbon_g_per_kwh = {intensity}
[[machine]]
match = "NVIDIA A100-SXM4-80GB"
usd_per_hour = 1.79
source = "test"
date = 2026-11-25
"""
    frame, _ = cost.price_cases(load_results(tmp_path), spec(prices, "p.toml"))
    assert frame.iloc[0]["mfu"] == pytest.approx(mfu, rel=1e-9)  # derived at load from the peak table
    tr, _ = cost.project_training(frame, "llama", d, 2048, params=n)
    r = tr.iloc[0]
    assert r["device_hours"] == pytest.approx(hours_pub, rel=0.01)
    assert r["time_h"] == pytest.approx(hours_pub / 2048, rel=0.01)
    assert r["energy_kwh"] == pytest.approx(hours_pub * 0.4, rel=0.01)
    assert r["co2_kg"] / 1000 == pytest.approx(co2_t_pub, rel=0.01)
    assert r["cost_usd"] == pytest.approx(hours_pub * 1.79, rel=0.01)
    assert "scaling_assumed" in r["quality_flags"] and "mfu_from_other_size" in r["quality_flags"]


def test_training_projection_scaling_efficiency_and_machines_without_training(tmp_path):
    write(tmp_path, "a", [case("decoder:tiny", "train", 0.01, device_name="GPU-A", flops=1e12)])
    write(tmp_path, "b", [case("decoder:tiny", "infer", 0.01, device_name="GPU-B")])
    frame, _ = cost.price_cases(load_results(tmp_path), spec(TWO_MACHINES, "p.toml"))
    ideal, _ = cost.project_training(frame, "decoder", 1e9, 8, params=1e6)
    half, notes = cost.project_training(frame, "decoder", 1e9, 8, params=1e6, scaling_efficiency=0.5)
    assert half.iloc[0]["time_h"] == pytest.approx(2 * ideal.iloc[0]["time_h"])
    assert "as given" in notes[2]
    no = ideal.set_index("machine").loc["GPU-B @ b"]
    assert "no training result of decoder" in no["reason"] and math.isnan(no["time_h"])


def test_training_projection_uses_a_measured_scaling_efficiency_at_that_many_ranks(tmp_path):
    """A parallel training case of the family at 8 ranks on the machine gives the
    efficiency (the best strategy's); its group FLOP/s is never taken as one device's."""
    one = case("decoder:tiny", "train", 0.01, device_name="GPU-A", flops=1e12)

    def group(par, ws, step_s):
        c = case("decoder:tiny", "train", step_s, device_name="GPU-A", flops=1e12)
        ident = c.case.model_copy(update={"parallelism": par, "world_size": ws})
        return c.model_copy(update={"case_id": f"{c.case_id}/{par}{ws}", "case": ident,
                                    "facts": c.facts.model_copy(update={"global_batch_size": ws})})

    # weak scaling at 8 ranks: ddp 8 samples per 0.0125 s = 80 % of 8 x 100/s; ps 50 %
    write(tmp_path, "a", [one, group("ddp", 1, 0.01), group("ps", 1, 0.01), group("ddp", 8, 0.0125),
                          group("ps", 8, 0.02), group("ddp", 2, 0.0105)])
    frame, _ = cost.price_cases(load_results(tmp_path), spec(TWO_MACHINES, "p.toml"))
    ideal, _ = cost.project_training(frame, "decoder", 1e9, 8, params=1e6, scaling_efficiency=1.0)
    got, notes = cost.project_training(frame, "decoder", 1e9, 8, params=1e6)
    r = got.iloc[0]
    assert r["measured_case_id"] == one.case_id  # the single-process case's FLOP/s, not a group's
    assert r["scaling_efficiency"] == pytest.approx(0.8) and r["scaling_case_id"].endswith("/ddp8")
    assert "scaling_measured" in r["quality_flags"] and "scaling_assumed" not in r["quality_flags"]
    assert r["time_h"] == pytest.approx(ideal.iloc[0]["time_h"] / 0.8)
    four, _ = cost.project_training(frame, "decoder", 1e9, 4, params=1e6)  # no case at 4 ranks: assumed
    assert four.iloc[0]["scaling_efficiency"] == 1.0 and "scaling_assumed" in four.iloc[0]["quality_flags"]
    assert "measured where the machine ran a parallel" in notes[2]


# ------------------------------------------------------------------ parallel cases: the group's price
def _group(c, par: str, ws: int, nnodes_device: str = "cuda"):
    """``c`` as a ``par`` group of ``ws`` ranks (weak scaling: ws x its batch per step)."""
    ident = c.case.model_copy(update={"parallelism": par, "world_size": ws, "device": nnodes_device})
    return c.model_copy(update={"case_id": f"{c.case_id}/{par}{ws}", "case": ident,
                                "facts": c.facts.model_copy(update={"global_batch_size": ws * c.case.batch_size})})


@pytest.mark.parametrize("kind", ["rent", "own"])
def test_a_parallel_case_is_priced_as_its_group_of_devices(tmp_path, kind):
    """The issue's bar: a 2-rank case on a priced GPU costs 2 x the device's hourly price
    x 1e6 / (group throughput x 3600) per 1M samples; owned, the group's summed power
    with the group's amortised price. 2 ranks at 68 % efficiency cost more per sample
    than 1 device, never less."""
    one = case("decoder:tiny", "train", 0.010, device_name="GPU-A", power_w=300, bs=8)
    # 2 ranks x 8 samples in 0.01176 s: 1360 samples/s = 68 % of 2 x 800; the group draws 600 W
    two = _group(case("decoder:tiny", "train", 0.010 / 0.68, device_name="GPU-A", power_w=600, bs=8), "ddp", 2)
    write(tmp_path, "h", [one, _group(one, "ddp", 1), two])
    text = TWO_MACHINES if kind == "rent" else OWN.replace("AMD EPYC*", "GPU-A")
    frame, _ = cost.price_cases(load_results(tmp_path), spec(text, "p.toml"))
    got = frame.set_index("case_id")
    g, s = got.loc[two.case_id], got.loc[one.case_id]
    assert g["devices"] == 2 and s["devices"] == 1
    thr = g["throughput_samples_per_s"]
    assert thr == pytest.approx(2 * 8 / (0.010 / 0.68))  # the group's samples/s
    if kind == "rent":
        usd_h = 2 * 2.0  # GPU-A rents at $2/h per device
    else:  # $9000 per device over 5 years at 70 %, plus the group's 600 W at PUE 1.25, $0.12/kWh
        usd_h = 2 * 9000 / (5 * 8760 * 0.7) + 600 / 1000 * 1.25 * 0.12
        assert g["break_even_utilization"] == pytest.approx(2 * 9000 / (5 * 8760 * (2 * 1.1 - 0.6 * 1.25 * 0.12)))
        assert g["tco_usd"] == pytest.approx(usd_h * 5 * 8760 * 0.7)
    assert g["usd_per_hour"] == pytest.approx(usd_h, rel=1e-12)
    assert g["cost_usd_per_1m_samples"] == pytest.approx(usd_h * 1e6 / (thr * 3600), rel=1e-12)
    assert g["samples_per_usd"] == pytest.approx(thr * 3600 / usd_h, rel=1e-12)
    # energy: the group's joules per group sample (600 W over its samples/s), with the PUE
    assert g["energy_kwh_per_1m_samples"] == pytest.approx(600 / thr * 1e6 / 3.6e6 * g["pue"], rel=1e-9)
    # 68 % efficient: the group's sample costs 1 / 0.68 x the single device's (same power per device)
    assert s["throughput_samples_per_s"] == pytest.approx(800)
    assert g["cost_usd_per_1m_samples"] / s["cost_usd_per_1m_samples"] == pytest.approx(1 / 0.68)


def test_a_cpu_group_occupies_one_priced_machine_per_node():
    """On a CPU the ranks share the node's cores: the price line (the machine's CPU)
    counts once per node, whatever the world size."""
    assert cost.devices_per_case({"parallelism": "ddp", "world_size": 4, "device": "cpu", "nnodes": 1}) == 1
    assert cost.devices_per_case({"parallelism": "ddp", "world_size": 4, "device": "cpu", "nnodes": 2}) == 2
    assert cost.devices_per_case({"parallelism": "ddp", "world_size": 4, "device": "cuda", "nnodes": 2}) == 4
    assert cost.devices_per_case({"parallelism": "none", "world_size": 1, "device": "cuda"}) == 1


def test_data_and_checkpoint_cases_are_not_priced():
    """A data case's samples/s is what its loader delivers and a checkpoint case's a save:
    neither is a result a buyer pays for, so procure leaves them out (known answer: the
    frame holds exactly the model-step rows)."""
    df = load_results(EXAMPLE)
    io = df.head(2).copy()
    io["mode"] = ["data", "checkpoint"]
    io["case_id"] = io["case_id"] + "-io"
    import pandas as pd

    frame, _ = cost.price_cases(pd.concat([df, io], ignore_index=True), spec(RENT, "rent.toml"))
    assert len(frame) == len(df)
    assert not frame["case_id"].str.endswith("-io").any()
