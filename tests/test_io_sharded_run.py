"""A sharded checkpoint case end to end (issue 24, item 3), full tier: mlp:tiny saved
and loaded with torch.distributed.checkpoint by an fsdp group of 2 CPU ranks (gloo).
The bytes on disk are both ranks' shard files plus the metadata, the shards hold the
whole state (parameters and AdamW's two moments, fp32: 12 bytes per parameter), each
round has a save and a load time, and no scratch file is left behind."""

from conftest import write_suite


def test_fsdp_dcp_case_saves_every_shard_and_times_each_round(tmp_path):
    import hwbench
    from hwbench.analysis.derive import load_results

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path = write_suite(tmp_path, '[[matrix]]\nmodels = ["mlp:tiny"]\nmodes = ["checkpoint"]\n'
                       'checkpointers = ["dcp"]\nparallelism = ["fsdp"]\nworld_sizes = [2]\nbatch_sizes = [4]',
                       settings=f'min_time_s = 0.01\nmin_iters = 2\nmax_iters = 2\ncheckpoint_dir = "{scratch}"\n')
    out = hwbench.run_suite(path, out_dir=tmp_path / "out")
    assert out.exit_code == 0, [(c.case_id, c.reason) for c in out.record.cases]
    (c,) = out.record.cases
    f = c.facts
    assert c.case.parallelism == "fsdp" and c.case.world_size == 2 and f.ranks == [0, 1]
    # a shard file per rank, and the metadata: bytes on disk are their sum
    shards = f.checkpoint_shard_bytes
    assert len(shards) == 2 and f.checkpoint_files == 3
    assert sum(shards) < f.checkpoint_bytes
    # the shards hold every parameter and both moments (fp32), plus dcp's per-tensor
    # framing: mlp:tiny has 6 tensors, 4 items each (param, 2 moments, step), per rank
    payload = 12 * f.params
    assert payload <= sum(shards) <= payload + 2 * 6 * 4 * 4096
    saves = [t for r in c.measurement.raw_times_s for t in r]
    assert len(saves) == 2 and all(t > 0 for t in saves)
    assert len(f.checkpoint_load_s) == 2 and all(t > 0 for t in f.checkpoint_load_s)
    row = load_results(out.path).iloc[0]
    assert row["checkpoint_save_gbs"] > 0 and row["checkpoint_load_gbs"] > 0
    assert not list(scratch.iterdir()), "scratch files left behind"
