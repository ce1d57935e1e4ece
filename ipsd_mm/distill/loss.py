"""Instance-to-instance distillation between the two members of a pair, in pure torch.

Each member gives logits for the same class c (a region's logits, or an instance's class
logits). The member more confident in c (its own probability of c, at temperature 1) teaches;
its distribution at temperature T is the target (no gradient) of the other:
``T² · KL(p_teacher ‖ p_student)``. Softmax classifiers use the categorical KL; sigmoid
classifiers a per-class Bernoulli KL, summed over the classes. A gate can drop pairs whose
teacher is not right. :class:`PairedDistillLoss` returns *sums*: the adapters divide them by the
normaliser of the task loss they accompany (``docs/method.md``). Everything is computed in
float32, whatever the autocast dtype.
"""
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validate import to_choice, to_number, to_probability

GATES = ('none', 'argmax', 'threshold')


class PairSum(NamedTuple):
    """A summed paired KL and what it counted, all tensors (nothing waits for the device)."""
    total: Tensor  # Σ weight · gate · T² · KL, attached to the graph
    gated: Tensor  # pairs the gate dropped
    count: Tensor  # the weight distilled: the elements the sum is over


class PairedDistillLoss:
    """The paired KL with its temperature and teacher gate; built once by ``IPSDHook``.

    Args:
        temperature (float): T, softening both distributions; the term is scaled by T².
        gate (str): which pairs distil: ``'none'`` (all), ``'argmax'`` (the teacher's most
            probable class is the shared class) or ``'threshold'`` (the teacher's probability
            of the shared class is at least ``gate_threshold``). Gated-out pairs add zero.
        gate_threshold (float): the probability a teacher needs under ``gate='threshold'``.
    """

    def __init__(self, temperature: float = 4.0, gate: str = 'none',
                 gate_threshold: float = 0.5) -> None:
        self.temperature = to_number(temperature, 'IPSDHook: temperature', 0.0,
                                     low_open=True)
        self.gate = to_choice(gate, 'IPSDHook: gate', GATES)
        self.gate_threshold = to_probability(gate_threshold, 'IPSDHook: gate_threshold')

    def __repr__(self) -> str:
        return (f'PairedDistillLoss(temperature={self.temperature}, gate={self.gate!r}, '
                f'gate_threshold={self.gate_threshold})')

    def teachers(self, logits_a: Tensor, logits_b: Tensor, classes: Tensor,
                 sigmoid: bool = False) -> Tuple[Tensor, Tensor]:
        """For N pairs of (N, C) logits: where A teaches (ties: A), and which pairs pass the
        gate. Both (N,) bool."""
        z = torch.stack([logits_a, logits_b]).detach().float()
        prob = z.sigmoid() if sigmoid else z.softmax(-1)
        conf = prob.gather(-1, classes.view(1, -1, 1).expand(2, -1, 1)).squeeze(-1)
        a_teaches = conf[0] >= conf[1]
        if self.gate == 'none':
            return a_teaches, torch.ones_like(a_teaches)
        teacher_prob = torch.where(a_teaches[:, None], prob[0], prob[1])
        if self.gate == 'argmax':
            return a_teaches, teacher_prob.argmax(-1) == classes
        return a_teaches, torch.maximum(conf[0], conf[1]) >= self.gate_threshold

    def kept(self, logits_a: Tensor, logits_b: Tensor, classes: Tensor, sigmoid: bool = False,
             valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """:meth:`teachers`, restricted to the ``valid`` rows (all when None): where A teaches,
        the rows that distil, and the rows the gate dropped."""
        a_teaches, keep = self.teachers(logits_a, logits_b, classes, sigmoid)
        if valid is None:
            return a_teaches, keep, ~keep
        return a_teaches, keep & valid, ~keep & valid

    def divergence(self, teacher: Tensor, student: Tensor, sigmoid: bool = False) -> Tensor:
        """Row-wise ``T² · KL(p_teacher ‖ p_student)`` of (N, C) logits, teacher detached."""
        t = self.temperature
        teacher, student = teacher.detach().float() / t, student.float() / t
        if sigmoid:  # Bernoulli KL per class: BCE to the teacher's sigmoid minus its entropy
            q, log_q, log_1q = teacher.sigmoid(), F.logsigmoid(teacher), F.logsigmoid(-teacher)
            kl = q * (log_q - F.logsigmoid(student)) + (1 - q) * (log_1q - F.logsigmoid(-student))
        else:
            log_q = F.log_softmax(teacher, -1)
            kl = F.kl_div(F.log_softmax(student, -1), log_q, log_target=True, reduction='none')
        # A KL is never negative; float32 rounding of nearly equal logits can make it -1e-6.
        return kl.sum(-1).clamp(min=0) * t * t

    def pair_sum(self, logits_a: Tensor, logits_b: Tensor, classes: Tensor,
                 weights: Optional[Tensor] = None, sigmoid: bool = False,
                 valid: Optional[Tensor] = None) -> PairSum:
        """``Σ_k weight_k · gate_k · T² · KL`` over N pairs, how many pairs the gate dropped,
        and the weight distilled (``Σ_k weight_k · gate_k``: the elements the sum is over). A
        zero attached to the graph when nothing distils.

        ``weights``: (N,) per pair, or (N, 2) per member (A, B), of which the student's counts.
        ``valid``: (N,) bool, the rows that are pairs at all; the others add nothing and are
        not counted as gated.
        """
        if logits_a.shape[0] == 0:
            return PairSum(zero_like(logits_a, logits_b), *nothing_counted(logits_a))
        a_teaches, keep, dropped = self.kept(logits_a, logits_b, classes, sigmoid, valid)
        teacher = torch.where(a_teaches[:, None], logits_a, logits_b)
        student = torch.where(a_teaches[:, None], logits_b, logits_a)
        kl = self.divergence(teacher, student, sigmoid)
        if weights is None:
            weights = torch.ones_like(kl)
        elif weights.dim() == 2:  # per member: the student's
            weights = torch.where(a_teaches, weights[:, 1], weights[:, 0]).float()
        else:
            weights = weights.float()
        kept = weights * keep.float()
        return PairSum((kl * kept).sum(), dropped.sum(), kept.sum())

    def region_to_pixel_sum(self, region_a: Tensor, region_b: Tensor, classes: Tensor,
                            pixels_a: Tensor, owner_a: Tensor, pixels_b: Tensor,
                            owner_b: Tensor, valid: Optional[Tensor] = None) -> PairSum:
        """``pixel`` mode: the teacher's region distribution is the target of every student
        pixel of that region. ``Σ`` over those pixels of ``T² · KL``, the pairs gated out and
        the pixels distilled (tensors, as :meth:`pair_sum`).

        Args:
            region_a, region_b: (N, C) region logits of the two members; they pick the teacher.
            classes: (N,) the class of each region pair.
            pixels_a, pixels_b: (P_a, C) / (P_b, C) logits of the members' pixels.
            owner_a, owner_b: (P_a,) / (P_b,) which region pair (0..N-1) each pixel belongs
                to; -1 for a pixel in none. Masks, not selections: nothing waits for the device.
            valid: (N,) bool, as in :meth:`pair_sum`.
        """
        if region_a.shape[0] == 0:
            return PairSum(zero_like(region_a, region_b, pixels_a, pixels_b),
                           *nothing_counted(region_a))
        a_teaches, keep, dropped = self.kept(region_a, region_b, classes, valid=valid)
        teacher = torch.where(a_teaches[:, None], region_a, region_b)
        total, count = zero_like(region_a, region_b), region_a.new_zeros((), dtype=torch.float32)
        # A's pixels learn where B teaches, B's pixels where A teaches; gated pairs not at all.
        for pixels, owner, learns in ((pixels_a, owner_a, ~a_teaches & keep),
                                      (pixels_b, owner_b, a_teaches & keep)):
            row = owner.clamp(min=0)
            learning = ((owner >= 0) & learns[row]).float()
            kl = self.divergence(teacher[row], pixels)
            total = total + (kl * learning).sum()
            count = count + learning.sum()
        return PairSum(total, dropped.sum(), count)


def paired_kl(logits_a: Tensor, logits_b: Tensor, classes: Tensor,
              temperature: Optional[float] = None) -> Tensor:
    """Mean over N pairs of ``T² · KL(p_teacher ‖ p_student)`` (softmax, no gate): the
    classification recipe of the paper; a zero attached to the graph when N is 0.
    ``temperature``: None takes :class:`PairedDistillLoss`'s default."""
    loss = PairedDistillLoss() if temperature is None else PairedDistillLoss(temperature)
    return loss.pair_sum(logits_a, logits_b, classes).total / max(logits_a.shape[0], 1)


def nothing_counted(like: Tensor) -> Tuple[Tensor, Tensor]:
    """No pair gated, no element distilled, as tensors on ``like``'s device."""
    return (torch.zeros((), dtype=torch.long, device=like.device),
            torch.zeros((), dtype=torch.float32, device=like.device))


def zero_like(*tensors: Tensor) -> Tensor:
    """A float32 zero that stays attached to the graph of ``tensors`` (so DDP sees every
    parameter used and backward passes through)."""
    return sum(t.float().sum() for t in tensors) * 0.0
