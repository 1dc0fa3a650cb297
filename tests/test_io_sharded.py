"""Sharded checkpoint cases (issue 24, item 3: checkpoint cases with fsdp / tp), fast
tier: the suite rules, the planner's check and the pure merge of the ranks' reports.
The end-to-end run over a gloo group is in test_io_sharded_run.py (full tier)."""

import pytest

from hwbench import parallel, spec
from hwbench.errors import ConfigError
from hwbench.io import SHARDED_CHECKPOINTERS, SHARDED_STRATEGIES
from hwbench.parallel.report import RankReport, merge

HEAD = '[suite]\nname = "t"\n'


def cases(body: str):
    return spec.parse_suite(HEAD + body, "s.toml").cases


def error(body: str) -> str:
    with pytest.raises(ConfigError) as e:
        spec.parse_suite(HEAD + body, "s.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("s.toml: ")
    return msg


def test_dcp_checkpoint_cases_expand_over_sharded_strategies_and_world_sizes():
    got = cases('[[matrix]]\nmodels = ["encoder:tiny"]\nmodes = ["train", "checkpoint"]\n'
                'checkpointers = ["dcp", "dcp_async"]\nparallelism = ["none", "fsdp", "tp"]\nworld_sizes = [2]\n')
    ck = [c for c in got if c.mode == "checkpoint"]
    assert {(c.parallelism, c.world_size, c.checkpointer) for c in ck} == {
        ("none", 1, "dcp"), ("none", 1, "dcp_async"), ("fsdp", 2, "dcp"), ("fsdp", 2, "dcp_async"),
        ("tp", 2, "dcp"), ("tp", 2, "dcp_async")}
    assert "encoder:tiny/checkpoint/bs1/seq32/fp32/eager/cpu/fsdp2/dcp" in [c.case_id for c in ck]
    assert len([c for c in got if c.mode == "train"]) == 3


@pytest.mark.parametrize("body,needles", [
    # torch_save is one whole state from one process: not a sharded format (also by default)
    ('parallelism = ["fsdp"]\ncheckpointers = ["dcp", "torch_save"]',
     ["matrix[0].checkpointers:", "torch_save is not a sharded format", "take dcp or dcp_async"]),
    ('parallelism = ["fsdp"]', ["matrix[0].checkpointers:", "torch_save is not a sharded format"]),
    # ddp / pp / ps ranks hold no shards of the state
    ('parallelism = ["ddp"]\ncheckpointers = ["dcp"]', ["matrix[0].parallelism:", "with fsdp or tp, not ddp"]),
    ('parallelism = ["none", "pp"]\ncheckpointers = ["dcp"]', ["matrix[0].parallelism:", "not pp"]),
])
def test_parallel_checkpoint_blocks_name_the_field_and_allowed_values(body, needles):
    msg = error(f'[[matrix]]\nmodels = ["encoder:tiny"]\nmodes = ["checkpoint"]\nworld_sizes = [2]\n{body}\n')
    for n in needles:
        assert n in msg, msg


def test_other_io_modes_stay_single_process():
    msg = error('[[matrix]]\nmodels = ["encoder:tiny"]\nmodes = ["data"]\nparallelism = ["fsdp"]\n')
    assert 'matrix[0].parallelism: parallel strategies train or save sharded checkpoints' in msg


def test_single_process_checkpoint_blocks_keep_torch_save():
    got = cases('[[matrix]]\nmodels = ["mlp:tiny"]\nmodes = ["checkpoint"]\n')
    assert [c.checkpointer for c in got] == ["torch_save"]


def test_the_planner_takes_sharded_checkpoint_cases_and_refuses_the_rest():
    ok = cases('[[matrix]]\nmodels = ["encoder:tiny"]\nmodes = ["checkpoint"]\ncheckpointers = ["dcp"]\n'
               'parallelism = ["fsdp", "tp"]\nworld_sizes = [2]\n')
    for c in ok:
        assert parallel.requires(c, "cpu", 1) is None
    import dataclasses

    c = ok[0]
    assert "not a sharded format" in parallel.requires(dataclasses.replace(c, checkpointer="torch_save"), "cpu", 1)
    assert "checkpoint cases run sharded" in parallel.requires(dataclasses.replace(c, parallelism="ddp"), "cpu", 1)
    assert SHARDED_STRATEGIES == ("fsdp", "tp") and SHARDED_CHECKPOINTERS == ("dcp", "dcp_async")


def _report(rank, saves, loads, blocked=None, nbytes=None):
    return RankReport(rank=rank, pid=100 + rank, status="ok", raw_times_s=[saves], first_iter_s=1.0 + rank,
                      warmup_s=1.0, t_start=0.0, t_ready=1.0, t_first_timed=2.0 + rank, t_window_end=5.0 + rank,
                      params=10, flops_per_sample=0.0, group_batch=4, host_rss_peak_bytes=1,
                      checkpoint_load_s=loads, checkpoint_blocked_s=blocked, checkpoint_bytes=nbytes,
                      checkpoint_files=3 if nbytes else None, checkpoint_load_from="storage",
                      scratch_fs_type="ext4" if rank == 0 else None)


def test_merge_takes_the_slowest_rank_per_round_and_rank_0s_byte_count():
    reps = {0: _report(0, [1.0, 4.0], [2.0, 1.0], [0.5, 0.1], nbytes=1000),
            1: _report(1, [3.0, 2.0], [1.0, 5.0], [0.2, 0.3])}
    m, f, ts = merge(reps)
    assert m.raw_times_s == [[3.0, 4.0]]
    assert f.checkpoint_load_s == [2.0, 5.0] and f.checkpoint_blocked_s == [0.5, 0.3]
    assert (f.checkpoint_bytes, f.checkpoint_files, f.scratch_fs_type) == (1000, 3, "ext4")
    assert f.ranks == [0, 1] and ts["first_timed"] == 2.0 and ts["window_end"] == 6.0


def test_merge_of_train_ranks_has_no_checkpoint_facts():
    r = RankReport(rank=0, pid=1, status="ok", raw_times_s=[[1.0]], first_iter_s=1.0, warmup_s=1.0, t_start=0.0,
                   t_ready=1.0, t_first_timed=2.0, t_window_end=3.0)
    _, f, _ = merge({0: r})
    assert f.checkpoint_load_s is None and f.checkpoint_bytes is None


def test_the_saving_table_names_a_sharded_cases_group():
    import pandas as pd

    from hwbench.analysis import feeding

    df = pd.DataFrame({"status": ["ok", "ok", "failed"], "mode": ["checkpoint"] * 3, "run_id": ["r"] * 3,
                       "model": ["mlp:tiny"] * 3, "checkpointer": ["dcp", "dcp", "dcp"],
                       "parallelism": ["none", "fsdp", "tp"], "world_size": [1, 2, 2]})
    assert list(feeding.checkpoint_cases(df)["checkpointer"]) == ["dcp", "dcp fsdp2"]
