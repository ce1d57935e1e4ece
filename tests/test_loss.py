"""The paired KL: values, gradients, roles, scaling and numerical safety."""
import math

import pytest
import torch
import torch.nn.functional as F

from ipsd_mm.distill.loss import PairedDistillLoss, paired_kl


def direct_kl(teacher, student, t):
    p = F.softmax(teacher / t, -1)
    return float((p * (p.log() - F.log_softmax(student / t, -1))).sum() * t * t)


def test_matches_direct_computation_and_teacher_is_the_confident_member():
    za = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.1, 0.2]], requires_grad=True)
    zb = torch.tensor([[0.5, 1.0, 0.0], [0.0, 3.0, 0.2]], requires_grad=True)
    classes = torch.tensor([0, 1])
    t = 2.0
    # pair 0: A is more confident in class 0 -> A teaches; pair 1: B in class 1 -> B teaches.
    expected = (direct_kl(za[0].detach(), zb[0].detach(), t)
                + direct_kl(zb[1].detach(), za[1].detach(), t)) / 2
    loss = paired_kl(za, zb, classes, t)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    # Gradient only reaches the student member of each pair.
    assert za.grad[0].abs().sum() == 0 and zb.grad[0].abs().sum() > 0
    assert zb.grad[1].abs().sum() == 0 and za.grad[1].abs().sum() > 0


def test_identical_members_give_zero_and_symmetry():
    z = torch.randn(5, 4)
    c = torch.randint(0, 4, (5,))
    assert paired_kl(z, z.clone(), c).item() == pytest.approx(0.0, abs=1e-6)
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    assert paired_kl(a, b, c).item() == pytest.approx(paired_kl(b, a, c).item(), rel=1e-5)


def test_temperature_scales_as_documented():
    """The teacher is the member more confident at T=1; T only softens the KL."""
    a, b, c = torch.randn(3, 6), torch.randn(3, 6), torch.tensor([0, 1, 2])
    for t in (1.0, 4.0):
        manual = sum(direct_kl(*((a[k], b[k]) if F.softmax(a[k], -1)[c[k]]
                                 >= F.softmax(b[k], -1)[c[k]] else (b[k], a[k])), t)
                     for k in range(3)) / 3
        assert paired_kl(a, b, c, t).item() == pytest.approx(manual, rel=1e-5)


def test_empty_input_gives_attached_zero():
    za = torch.zeros(0, 3, requires_grad=True)
    loss = paired_kl(za, torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()


@pytest.mark.parametrize('scale', [1e2, 1e4, 3e4])
def test_extreme_logits_stay_finite(scale):
    a = torch.randn(8, 5) * scale
    b = torch.randn(8, 5) * scale
    a.requires_grad_()
    loss = paired_kl(a, b, torch.randint(0, 5, (8,)))
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(a.grad).all()


def test_under_autocast_computes_in_float32():
    a = torch.randn(4, 5, dtype=torch.bfloat16) * 300
    b = torch.randn(4, 5, dtype=torch.bfloat16) * 300
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = paired_kl(a, b, torch.tensor([0, 1, 2, 3]))
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())


def test_pixel_mode_targets_every_student_pixel():
    region_a = torch.tensor([[3.0, 0.0]])  # A confident in class 0: A teaches
    region_b = torch.tensor([[0.0, 0.0]])
    pixels_a = torch.randn(4, 2, requires_grad=True)
    pixels_b = torch.randn(3, 2, requires_grad=True)
    loss, gated, count = PairedDistillLoss(temperature=1.0).region_to_pixel_sum(
        region_a, region_b, torch.tensor([0]), pixels_a, torch.zeros(4, dtype=torch.long),
        pixels_b, torch.zeros(3, dtype=torch.long))
    expected = sum(direct_kl(region_a[0], pixels_b[k].detach(), 1.0) for k in range(3))
    assert loss.item() == pytest.approx(expected, rel=1e-5) and gated == 0 and count == 3
    loss.backward()
    assert pixels_a.grad is None or pixels_a.grad.abs().sum() == 0
    assert pixels_b.grad.abs().sum() > 0


def bernoulli_kl(teacher, student, t):
    q, s = torch.sigmoid(teacher / t), torch.sigmoid(student / t)
    return float((q * (q / s).log() + (1 - q) * ((1 - q) / (1 - s)).log()).sum() * t * t)


def test_sigmoid_kd_is_a_per_class_bernoulli_kl_with_the_higher_score_teaching():
    za = torch.tensor([[2.0, -1.0, 0.5]], requires_grad=True)
    zb = torch.tensor([[0.0, 1.0, -0.5]], requires_grad=True)
    loss = PairedDistillLoss(temperature=2.0)
    total, _, _ = loss.pair_sum(za, zb, torch.tensor([0]), sigmoid=True)  # A's sigmoid[0] higher
    assert total.item() == pytest.approx(bernoulli_kl(za[0].detach(), zb[0].detach(), 2.0),
                                         rel=1e-5)
    total.backward()
    assert za.grad.abs().sum() == 0 and zb.grad.abs().sum() > 0
    # Identical members: zero; it differs from the softmax KL of the same logits.
    assert loss.pair_sum(za, za.detach(), torch.tensor([0]), sigmoid=True)[0].item() == \
        pytest.approx(0.0, abs=1e-6)
    assert loss.pair_sum(za, zb, torch.tensor([0]))[0].item() != pytest.approx(total.item())


@pytest.mark.parametrize('gate,kept', [('none', [1, 1, 1]), ('argmax', [1, 0, 0]),
                                       ('threshold', [1, 1, 0])])
def test_gate_drops_pairs_whose_teacher_is_not_right(gate, kept):
    # Pair 0: A teaches, its argmax is the class (p ~ 0.84); pair 1: A teaches class 1 at
    # p ~ 0.42, but its argmax is class 0; pair 2: B teaches (uniform, p = 1/3, argmax 0).
    za = torch.tensor([[3.0, 0.0, 1.0], [2.0, 1.7, -2.0], [3.0, -1.0, 0.0]])
    zb = torch.zeros(3, 3)
    classes = torch.tensor([0, 1, 1])
    loss = PairedDistillLoss(temperature=1.0, gate=gate, gate_threshold=0.4)
    total, gated, count = loss.pair_sum(za, zb, classes,
                                        weights=torch.tensor([1.0, 10.0, 100.0]))
    one = [PairedDistillLoss(1.0).pair_sum(za[k:k + 1], zb[k:k + 1], classes[k:k + 1])[0].item()
           for k in range(3)]
    assert gated == kept.count(0) and count == sum(w * k for w, k in zip((1, 10, 100), kept))
    assert total.item() == pytest.approx(sum(w * o * k for w, o, k in
                                             zip((1, 10, 100), one, kept)), rel=1e-5)


@pytest.mark.parametrize('kwargs,name', [(dict(temperature=float('inf')), 'temperature'),
                                         (dict(temperature=0), 'temperature'),
                                         (dict(gate='maybe'), 'gate'),
                                         (dict(gate_threshold=1.5), 'gate_threshold')])
def test_bad_options_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PairedDistillLoss(**kwargs)


def test_per_member_weights_count_the_students():
    za = torch.tensor([[3.0, 0.0], [0.0, 0.0]])  # pair 0: A is sure of class 0: A teaches
    zb = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    zb[1] = torch.tensor([0.0, -1.0])  # pair 1: p_A(1) = 0.5 > p_B(1) = 0.27: A teaches
    classes = torch.tensor([0, 1])
    loss = PairedDistillLoss(1.0)
    per_pair, _, _ = loss.pair_sum(za, zb, classes)
    members = torch.tensor([[5.0, 7.0], [2.0, 3.0]])  # B is the student in both pairs
    total, _, count = loss.pair_sum(za, zb, classes, weights=members)
    single = [loss.pair_sum(za[k:k + 1], zb[k:k + 1], classes[k:k + 1])[0].item() for k in (0, 1)]
    assert count == 10.0 and total.item() == pytest.approx(7 * single[0] + 3 * single[1])
    assert per_pair.item() == pytest.approx(sum(single))


def test_the_kl_of_nearly_equal_logits_is_never_negative():
    """float32 rounding makes about half of these raw KLs slightly negative (logged as -0.0000);
    the term clamps each at zero, as a divergence is."""
    torch.manual_seed(0)
    z = torch.randn(10000, 11) * 20
    near = z + torch.randn_like(z) * 1e-6
    raw = F.kl_div(F.log_softmax(near / 4, -1), F.log_softmax(z / 4, -1), log_target=True,
                   reduction='none').sum(-1)
    assert (raw < 0).any()  # the rounding this guards against
    assert (PairedDistillLoss().divergence(z, near) >= 0).all()
    assert (PairedDistillLoss().divergence(z, near, sigmoid=True) >= 0).all()
