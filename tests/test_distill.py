"""Knowledge distillation (the ``distill:<student size>`` variant): the loss, the step
(frozen teacher, trained student), the suite checks, and a tiny teacher / student pair
run end to end through real workers next to the student-only cases it is compared with.
With random weights this measures cost and speed, not what the student learns."""

import contextlib
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from hwbench import models, variants, workloads
from hwbench.errors import ConfigError
from hwbench.spec import parse_suite
from conftest import run_suite


def _prep(model):
    return SimpleNamespace(model=model, autocast=contextlib.nullcontext, scaler=None)


def test_distill_loss_is_the_mixed_kl_at_a_temperature():
    torch.manual_seed(0)
    s, t = torch.randn(4, 7, 10), torch.randn(4, 7, 10)
    task = torch.tensor(3.0)
    T = 2.0
    kl = (F.softmax(t / T, -1) * (F.log_softmax(t / T, -1) - F.log_softmax(s / T, -1))).sum(-1).mean()
    got = workloads.distill_loss(s, t, task, alpha=0.25, temperature=T)
    torch.testing.assert_close(got, 0.25 * T * T * kl + 0.75 * task)
    # the task loss alone, and no divergence from a teacher the student equals
    assert workloads.distill_loss(s, t, task, alpha=0.0, temperature=T).item() == pytest.approx(3.0)
    assert workloads.distill_loss(s, s, task, alpha=1.0, temperature=T).item() == pytest.approx(0.0, abs=1e-6)


def _pair():
    fam, _ = models.get("llama:tiny")
    torch.manual_seed(0)
    teacher = fam.build(fam.sizes["tiny"])
    variants.apply(teacher, "distill:nano")  # frozen
    student = fam.build(fam.sizes["nano"])
    ids, targets = fam.make_batch(fam.sizes["tiny"], 2, models.Shape(seq_len=16), "cpu", torch.float32)
    return fam, teacher, student, ids, targets


def test_the_step_trains_the_student_and_leaves_the_teacher_frozen():
    fam, teacher, student, ids, targets = _pair()
    assert not any(p.requires_grad for p in teacher.parameters())
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_before = {k: v.clone() for k, v in student.state_dict().items()}
    step = workloads.make_distill_step(_prep(teacher), _prep(student), fam.loss, ids, targets, alpha=0.5, temperature=2.0)
    losses = [step().item() for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in t_before.items())
    assert any(not torch.equal(v, student.state_dict()[k]) for k, v in s_before.items())
    assert all(p.grad is None for p in teacher.parameters()) and all(p.grad is None for p in student.parameters())
    assert not teacher.training and student.training


def test_suite_checks_the_student_size_and_the_mode():
    def suite(models_, variant, modes='["train"]'):
        return parse_suite(f'[suite]\nname="x"\n[[matrix]]\nmodels={models_}\nmodes={modes}\nvariants=["{variant}"]\n')

    (c,) = suite('["llama:8b"]', "distill:1b").cases
    assert c.case_id == "llama:8b/train/bs1/seq512/fp32/eager/cpu/distill:1b"
    assert variants.student_of(c.model, c.variant) == "llama:1b"
    with pytest.raises(ConfigError, match=r"matrix\[0\]\.variants: distill:xl: llama has no size 'xl' for the student; "
                                          r"sizes: nano, tiny, 1b, 8b"):
        suite('["llama:8b"]', "distill:xl")
    with pytest.raises(ConfigError, match="teacher llama:8b has 128256 outputs and student llama:tiny 1000"):
        suite('["llama:8b"]', "distill:tiny")
    with pytest.raises(ConfigError, match="the student must be another size than the teacher"):
        suite('["vit:b16"]', "distill:b16")
    assert [c.model for c in suite('["vit:b16"]', "distill:s16").cases] == ["vit:b16"]  # DeiT's pair
    s = parse_suite('[suite]\nname="x"\n[settings]\ndistill_alpha=0.9\ndistill_temperature=4.0\n'
                    '[[matrix]]\nmodels=["llama:tiny"]\nmodes=["train"]\nvariants=["distill:nano"]\n')
    assert (s.spec.settings.distill_alpha, s.spec.settings.distill_temperature) == (0.9, 4.0)
    with pytest.raises(ConfigError, match="distill_alpha"):
        parse_suite('[suite]\nname="x"\n[settings]\ndistill_alpha=1.5\n[[matrix]]\nmodels=["llama:tiny"]\n')


BODY = """
[[matrix]]
models = ["llama:tiny"]
modes = ["train"]
batch_sizes = [2]
variants = ["distill:nano"]
devices = ["cpu"]

[[matrix]]
models = ["llama:nano"]
modes = ["train", "infer"]
batch_sizes = [2]
devices = ["cpu"]

[[matrix]]
models = ["llama:tiny"]
modes = ["infer"]
batch_sizes = [2]
devices = ["cpu"]
"""


def test_a_tiny_pair_distils_end_to_end_with_its_comparison_cases(tmp_path):
    _, out = run_suite(tmp_path, BODY)
    assert out.exit_code == 0, [(c.case_id, c.reason) for c in out.record.cases]
    cases = {c.case_id: c for c in out.record.cases}
    d = cases["llama:tiny/train/bs2/seq32/fp32/eager/cpu/distill:nano"]
    fam, _ = models.get("llama:tiny")
    assert d.status == "ok" and d.facts.student_model == "llama:nano"
    assert d.facts.params == fam.param_count(fam.sizes["tiny"])
    assert d.facts.student_params == fam.param_count(fam.sizes["nano"])
    # the step's work: teacher forward + student training
    shape = models.Shape(seq_len=32)
    expected = fam.flops_per_sample("tiny", "infer", shape) + fam.flops_per_sample("nano", "train", shape)
    assert d.facts.flops_per_sample == expected
    assert d.facts.flops_per_sample_counted == pytest.approx(expected, rel=0.02)
    # what the distillation step is compared with: the student alone (train) and the
    # student's inference against the teacher's, all in the same run
    for cid in ("llama:nano/train/bs2/seq32/fp32/eager/cpu", "llama:nano/infer/bs2/seq32/fp32/eager/cpu",
                "llama:tiny/infer/bs2/seq32/fp32/eager/cpu"):
        assert cases[cid].status == "ok" and cases[cid].facts.student_model is None
