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
