"""hwbench.registry: one Registry[T] for every plug-in axis."""

from dataclasses import dataclass

import pytest

from hwbench.errors import UserError
from hwbench.registry import Registry, UnknownName


@dataclass(frozen=True)
class Entry:
    name: str
    why: str | None = None

    def requires(self, device, case):
        return self.why


def test_register_by_call_and_decorator_keeps_order():
    reg: Registry = Registry("thing")
    a = reg.register(Entry("alpha"))
    assert a == Entry("alpha")

    @reg.register(name="beta")
    def beta():
        return 2

    @reg.register
    def gamma():
        return 3

    assert reg.names() == ("alpha", "beta", "gamma")
    assert reg.get("beta") is beta and "gamma" in reg and len(reg) == 3


def test_duplicate_name_is_refused():
    reg: Registry = Registry("thing")
    reg.register(Entry("alpha"))
    with pytest.raises(ValueError, match="'alpha' is already registered"):
        reg.register(Entry("alpha"))


def test_unknown_name_is_one_line_user_error_with_did_you_mean():
    reg: Registry = Registry("precision")
    for n in ("fp32", "bf16", "fp16"):
        reg.register(Entry(n))
    with pytest.raises(UserError) as err:
        reg.get("bf61")
    msg = str(err.value)
    assert msg == "unknown precision 'bf61'; allowed: fp32, bf16, fp16; did you mean 'bf16'?"
    assert "\n" not in msg
    assert isinstance(err.value, KeyError)  # old KeyError fallbacks keep working
    with pytest.raises(UnknownName, match="allowed: fp32, bf16, fp16$"):
        reg.get("zzzzzz")


def test_requires_dispatches_to_the_entry():
    reg: Registry = Registry("backend")
    reg.register(Entry("ok"))
    reg.register(Entry("no", why="needs cuda"))
    reg.register(lambda: None, name="plain")
    assert reg.requires("ok", "cpu", None) is None
    assert reg.requires("no", "cpu", None) == "needs cuda"
    assert reg.requires("plain", "cpu", None) is None


def test_unregister_removes():
    reg: Registry = Registry("thing")
    reg.register(Entry("alpha"))
    reg.unregister("alpha")
    reg.unregister("alpha")  # absent: no error
    assert reg.names() == ()


def test_a_new_parallel_strategy_is_one_registered_object():
    from hwbench.case import Case
    from hwbench.parallel import STRATEGIES, mesh, requires
    from hwbench.parallel.strategy import Strategy, data_parallel
    from hwbench.spec import Settings, parse_suite

    STRATEGIES.register(Strategy("toy", "a toy data-parallel strategy", data_parallel=True, backends=("eager",),
                                 check=lambda case, fam, settings: None, make_step=lambda *a: None))
    try:
        assert "toy" in data_parallel()
        s = parse_suite('[suite]\nname="x"\n[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["train"]\n'
                        'parallelism=["toy"]\nworld_sizes=[2]\n')
        assert [c.case_id for c in s.cases] == ["mlp:tiny/train/bs1/fp32/eager/cpu/toy2"]
        assert mesh.batches("toy", 4, 2, "strong") == (2, 4)  # data-parallel: the batch splits
        case = Case("mlp:tiny", "train", 3, "fp32", "eager", "cpu", parallelism="toy", world_size=2)
        strong = Settings(scaling="strong")
        assert requires(case, "cpu", 1, strong) == "toy: global batch 3 does not divide over 2 ranks (scaling = \"strong\")"
        assert requires(case.__class__(**{**case.to_dict(), "backend": "compile"}), "cpu", 1) == (
            "toy: runs the eager backends, not 'compile'")
    finally:
        STRATEGIES.unregister("toy")
    with pytest.raises(UserError, match="parallelism"):
        parse_suite('[suite]\nname="x"\n[[matrix]]\nmodels=["mlp:tiny"]\nmodes=["train"]\nparallelism=["toy"]\n')


def test_entries_in_modules_of_their_own_are_loaded_on_the_first_read(tmp_path, monkeypatch):
    import sys
    import types

    home = types.ModuleType("toy_registry_home")
    home.REG = Registry("toy", ("toy_registry_plugin",))
    monkeypatch.setitem(sys.modules, "toy_registry_home", home)
    (tmp_path / "toy_registry_plugin.py").write_text(
        "from toy_registry_home import REG\nREG.register(name='plugged')(42)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_registry_plugin", raising=False)
    home.REG.register(name="built_in")(1)
    assert "toy_registry_plugin" not in sys.modules  # not before a read
    assert home.REG.names() == ("built_in", "plugged") and home.REG.get("plugged") == 42
    assert len(home.REG) == 2 and "plugged" in home.REG  # imported once: no duplicate registration
