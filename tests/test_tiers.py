"""The test tiers of tests/conftest.py: a fast-tier test that starts a worker, the CLI or
torchrun fails with a message saying to mark it full, and the classification rules."""

import sys

import pytest

import conftest


def test_a_fast_test_that_starts_a_worker_fails_saying_to_mark_it_full():
    from hwbench import launch

    for call in (launch.start, launch.prestart, launch.ProcessLauncher().start):
        with pytest.raises(pytest.fail.Exception, match=r"runs in the fast tier: mark it @pytest.mark.full"):
            call()


@pytest.mark.parametrize("argv,starts", [
    ([sys.executable, "-m", "hwbench.cli", "run", "smoke"], True),
    ("python3 -m hwbench.cli report x.json", True),
    ([sys.executable, "-c", "import torch"], True),
    (["torchrun", "--nproc-per-node", "2", "x.py"], True),
    ([sys.executable, "-m", "torch.distributed.run", "x.py"], True),
    (["/usr/bin/chromium", "--headless"], True),
    (["asv", "run"], True),
    (["hwbench", "run", "smoke"], True),
    (["git", "rev-parse", "HEAD"], False),
    (["g++", "-O2", "x.cpp"], False),  # what inductor starts
    ([sys.executable, "/site-packages/torch/_inductor/compile_worker/__main__.py"], False),
])
def test_which_commands_count_as_starting_the_project(argv, starts):
    assert conftest.starts_project_process(argv) is starts


def test_tier_rules_follow_the_helpers_a_test_uses(request):
    item = request.node
    assert item.get_closest_marker("full") is None  # this test uses no process helper

    def uses(fn):
        return conftest._uses(fn, sys.modules[__name__], set())

    forks = globals()["forks_through_a_helper"]  # (named here, this test would be full too)
    assert "run_suite" in uses(forks)  # through a helper of this module
    assert "run_suite" not in uses(test_which_commands_count_as_starting_the_project)


def helper(tmp_path):
    conftest.run_suite(tmp_path, "")


def forks_through_a_helper(tmp_path):
    helper(tmp_path)
