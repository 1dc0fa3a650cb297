"""Test tiers, the guard that keeps process starts out of the fast tier, and helpers.

Two tiers (README and docs/development.md):

* ``python3 -m pytest``: the **fast tier** -- unit tests of pure functions, the runner
  against an in-process fake launcher (tests/fakes/fake_launcher.py), and the few real
  end-to-end runs marked ``e2e`` that prove the wiring (one worker run, one resume,
  one compare, one HTML render).
* ``python3 -m pytest --all``: the **full tier** -- everything, what ``.ci/run`` runs.

A test belongs to the full tier (marker ``full``, applied here at collection, never
remembered test by test) when it

1. is marked ``full``, ``slow`` or ``browser``, or its module is in :data:`FULL_MODULES`;
2. or uses, directly, through a fixture or through a helper of its own module, one of
   the process-starting helpers (:data:`PROCESS_NAMES`: ``run_suite``, the CLI helper
   ``hwbench``, ``subprocess``, ``run_worker``, ``run_group``, ...), unless it uses the
   ``fake_launcher`` fixture or ``FakeLauncher`` (then nothing forks).

What the scan cannot see (a pure-looking helper that starts a process) the guard
catches: while a fast-tier test (not ``e2e``) runs, the process-starting seams --
hwbench.launch's forkserver start, ``run_worker`` / ``run_group``, the real launcher,
and ``subprocess`` starting ``python -m hwbench...``, ``python -c``, torchrun, asv,
Chromium or pip -- fail the test, saying to mark it ``full``. The guard is on in both
tiers, so CI (which runs ``--all``) checks the classification too.

torch is not imported here: tests that need it import it themselves.
"""

import inspect
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# the store's Parquet cache (hwbench/store): a fresh folder for this test session (and the
# processes it starts), never the user's own cache
os.environ["HWBENCH_CACHE"] = tempfile.mkdtemp(prefix="hwbench-test-cache.")

# whole modules of the full tier: everything in them starts processes or takes long
FULL_MODULES = {
    "test_asv.py",  # asv builds and runs its own environment
    "test_packaging.py",  # builds a wheel, installs it in a fresh venv
    "test_multinode.py",  # several nodes of torchrun groups
    "test_collectives.py",  # torchrun groups
}
# names whose use in a test (or its fixtures / module helpers) means it starts processes
PROCESS_NAMES = {
    "run_suite", "run_worker", "run_group", "subprocess", "Popen", "check_output", "torchrun",
}
# programs a fast-tier test may not start (argv[0]'s name), and Python modules it may not run
PROGRAMS = {"hwbench", "torchrun", "asv", "chromium", "chromium-browser", "google-chrome", "pip", "pip3"}
MODULES = {"hwbench", "torch", "asv", "pip", "venv", "build"}
# a test that runs suites through the in-process fake launcher forks nothing
FAST_FIXTURES, FAST_NAMES = {"fake_launcher"}, {"FakeLauncher"}


# ------------------------------------------------------------------------ options and tiers
def pytest_addoption(parser):
    parser.addoption("--all", action="store_true", dest="full_tier",
                     help="run the full tier too: every forked worker, torchrun group, CLI subprocess, "
                          "browser, asv and wheel-build test (what .ci/run runs)")


def _code_names(code, seen: set) -> set[str]:
    names = set(code.co_names) | set(code.co_varnames) & {"subprocess"}
    for c in code.co_consts:
        if inspect.iscode(c) and c not in seen:
            seen.add(c)
            names |= _code_names(c, seen)
    return names


def _uses(fn, module, seen: set) -> set[str]:
    """Names used by ``fn`` and by the functions of ``module`` it calls, transitively."""
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    if code is None or code in seen:
        return set()
    seen.add(code)
    names = _code_names(code, seen)
    g = getattr(fn, "__globals__", {})
    for n in list(names):
        obj = g.get(n)
        if inspect.isfunction(obj) and obj.__module__ in (module.__name__, "conftest"):
            if obj.__module__ == "conftest" and obj.__name__ in ("run_suite", "hwbench"):
                names.add("run_suite")  # the helpers that start workers / the CLI
            elif obj.__module__ == module.__name__:
                names |= _uses(obj, module, seen)
        elif inspect.isclass(obj) and obj.__module__ == module.__name__:
            for m in vars(obj).values():
                if inspect.isfunction(m):
                    names |= _uses(m, module, seen)
    return names


def tier_reason(item) -> str | None:
    """Why ``item`` is in the full tier (None: it is fast)."""
    for mark in ("full", "slow", "browser"):
        if item.get_closest_marker(mark):
            return f"marked {mark}"
    if item.get_closest_marker("e2e"):
        return None
    if item.path.name in FULL_MODULES:
        return f"{item.path.name} is in FULL_MODULES"
    fixtures = set(getattr(item, "fixturenames", ()))
    if fixtures & FAST_FIXTURES:
        return None
    seen: set = set()
    names = _uses(item.function, item.module, seen) if hasattr(item, "function") else set()
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for name in fixtures:  # the test module's and conftest's own fixtures
        for d in defs.get(name, ()):
            if getattr(d.func, "__module__", None) in (item.module.__name__, "conftest"):
                names |= _uses(d.func, item.module, seen)
    if names & FAST_NAMES:
        return None
    hit = sorted(names & PROCESS_NAMES)
    return f"uses {', '.join(hit)}" if hit else None


def pytest_collection_modifyitems(config, items):
    full_run = config.getoption("full_tier")
    explicit = any("::" in a for a in config.args)  # named test ids always run
    keep, dropped = [], []
    for item in items:
        why = tier_reason(item)
        item.stash[TIER] = why
        if why is not None:
            item.add_marker(pytest.mark.full)
        (keep if full_run or explicit or why is None else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    config.stash[DROPPED] = len(dropped)
    if any("gpu" in item.keywords for item in items):
        import torch  # only where a GPU test was collected

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="needs a CUDA GPU")
            for item in items:
                if "gpu" in item.keywords:
                    item.add_marker(skip)


TIER = pytest.StashKey[str | None]()
DROPPED = pytest.StashKey[int]()


def pytest_report_header(config):
    if config.getoption("full_tier"):
        return "hwbench tier: full (--all)"
    return "hwbench tier: fast; the full tier (forked workers, CLI, torchrun, browser, asv) runs with --all"


def pytest_terminal_summary(terminalreporter, config):
    n = config.stash.get(DROPPED, 0)
    if n:
        terminalreporter.write_line(f"fast tier: {n} full-tier tests not run; run every test with: "
                                    "python3 -m pytest --all")


# ------------------------------------------------------------------------ the guard
class _Guard:
    """Patches the process-starting seams to fail a fast-tier test that uses them."""

    def __init__(self, item):
        self.item = item
        self.saved: list = []
        self.hit: str | None = None

    def fail(self, what: str):
        self.hit = (f"{self.item.nodeid} starts {what} but runs in the fast tier: mark it "
                    "@pytest.mark.full (or pass launcher=fake_launcher); see tests/conftest.py")
        pytest.fail(self.hit, pytrace=False)

    def patch(self, owner, name, new):
        self.saved.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, new)

    def install(self):
        from hwbench import launch

        for name in ("prestart", "start", "run_worker", "run_group"):
            self.patch(launch, name, lambda *a, _n=name, **k: self.fail(f"a worker process (launch.{_n})"))
            self.patch(launch.ProcessLauncher, name,
                       lambda *a, _n=name, **k: self.fail(f"a worker process (ProcessLauncher.{_n})"))
        real_init = subprocess.Popen.__init__
        guard = self

        def popen_init(self, args, *a, **k):
            if starts_project_process(args):
                guard.fail(f"the process {str(args)[:120]!r}")
            real_init(self, args, *a, **k)

        self.patch(subprocess.Popen, "__init__", popen_init)

    def remove(self):
        for owner, name, old in reversed(self.saved):
            setattr(owner, name, old)
        self.saved.clear()


def starts_project_process(args) -> bool:
    """Whether a subprocess command runs the project or a heavy tool: hwbench (console
    script or ``-m hwbench...``), torchrun / ``-m torch.distributed.run``, asv, a
    browser, pip / venv / build, or any ``python -c`` snippet (it imports the project).
    Compilers and other tools that libraries start (inductor's g++, git) are allowed."""
    import shlex

    argv = shlex.split(args) if isinstance(args, str) else [os.fsdecode(x) for x in (
        [args] if isinstance(args, (bytes, os.PathLike)) else args)]
    if not argv:
        return False
    if Path(argv[0]).name in PROGRAMS:
        return True
    python = Path(argv[0]).name.startswith("python") or argv[0] == sys.executable
    if not python:
        return False
    rest = [a for a in argv[1:] if a not in ("-B", "-u", "-I", "-E", "-s", "-S")]
    if rest[:1] == ["-c"]:
        return True
    return rest[:1] == ["-m"] and len(rest) > 1 and rest[1].split(".")[0] in MODULES


def _guarded(item) -> bool:
    return item.stash.get(TIER, None) is None and not item.get_closest_marker("e2e")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    guard = _Guard(item) if _guarded(item) else None
    if guard is not None:
        guard.install()
        item.stash[GUARD] = guard
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    guard = item.stash.get(GUARD, None)
    if guard is not None:
        guard.remove()


GUARD = pytest.StashKey[_Guard]()


@pytest.fixture
def fake_launcher():
    """An in-process launcher (tests/fakes/fake_launcher.py): pass it to run_suite as
    ``launcher=`` and nothing forks."""
    from fakes.fake_launcher import FakeLauncher

    return FakeLauncher()


# ------------------------------------------------------------------------ helpers
def write_suite(tmp_path: Path, body: str, name: str = "suite.toml", settings: str = "") -> Path:
    # idle_baseline_s = 0: tests do not wait for an idle baseline unless they test it
    defaults = {"warmup_iters": "1", "min_time_s": "0.03", "min_iters": "3", "timeout_s": "60", "idle_baseline_s": "0"}
    for line in settings.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            defaults[key.strip()] = value.strip()
    lines = "\n".join(f"{k} = {v}" for k, v in defaults.items())
    text = f"""
[suite]
name = "t"
[settings]
{lines}
{body}
"""
    p = tmp_path / name
    p.write_text(text)
    return p


def hwbench(*args, env=None, timeout=300, cwd=None):
    """Run the real CLI in a subprocess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hwbench.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd or ROOT,
    )


def run_suite(tmp_path: Path, body: str, settings: str = "", **kwargs):
    """Run a suite written from ``body`` through the library entry point with real
    workers (or ``launcher=`` a fake); returns ({case_id: derived row}, RunOutcome)."""
    import hwbench
    from hwbench.analysis.derive import record_rows

    out = hwbench.run_suite(write_suite(tmp_path, body, settings=settings), out_dir=tmp_path / "out", **kwargs)
    rows = {r["case_id"]: r for r in record_rows(out.record)} if out.record is not None else {}
    return rows, out
