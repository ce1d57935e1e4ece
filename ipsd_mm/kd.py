"""The MMRazor side of ipsd_mm: teacher KD on the same footing as IPSD, for comparisons.

``custom_imports=dict(imports=['ipsd_mm.kd'])`` registers, in MMRazor's ``MODELS``:

=========================  ===================================================================
registered name            what
=========================  ===================================================================
FrozenTeacherDistill       MMRazor's ``SingleTeacherDistill`` made a fair control: the student
                           starts from exactly the weights the same config and seed give without
                           distillation, the teacher is wholly in eval mode and draws nothing
                           from the student's random streams
PixelKLDivergence          logits KD per pixel, averaged over pixels as the decode head's
                           cross-entropy is (IPSD's footing)
=========================  ===================================================================

:func:`distill_model` wraps a student and a teacher model config with one of the recipes in
:data:`RECIPES`; :func:`student_checkpoint` turns a distillation checkpoint into the student's
own (MMRazor's ``convert_kd_ckpt_to_student.py`` fails on torch >= 2.6 checkpoints).
MMRazor 1.0.0 needs a compatibility step on torch 2 (``ipsd_mm.compat``), applied on import.
"""
import copy
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import compat  # noqa: F401  (first: lets MMRazor 1.0.0 import on torch 2)
from mmrazor.models import SingleTeacherDistill
from mmrazor.registry import MODELS

#: recipe name: (what it distils, MMRazor's loss type)
RECIPES = {
    'cwd': ('the decode head logits (decode_head.conv_seg)', 'ChannelWiseDivergence'),
    'kl': ('the decode head logits, per pixel (decode_head.conv_seg)', 'PixelKLDivergence'),
    'pkd': ('the FPN outputs (neck)', 'PKDLoss'),
}


@MODELS.register_module()
class FrozenTeacherDistill(SingleTeacherDistill):
    """``SingleTeacherDistill`` for a controlled comparison with training without a teacher.

    - The student is built and initialised first, everything else (distiller, connectors,
      teacher) from a forked random stream, so the student starts from the weights the student
      config alone gives with the same seed, and training from the same random state (its
      dropout masks). (``SingleTeacherDistill`` builds the teacher between the student and its
      initialisation, which moves the student's start.)
    - A teacher that is not trainable is kept wholly in eval mode, dropout included (MMRazor
      sets only its BatchNorm layers to eval): its outputs are the model's, not a noisy draw,
      and its forward takes nothing from the random stream of the student's dropout.
    - A frozen teacher's forward runs on a fork of the random streams (CPU and the current CUDA
      device), so the student draws the numbers it would draw without a teacher.
      (``SingleTeacherDistill`` runs the teacher in loss mode, where a two-stage detector's RPN
      and RoI samplers draw from the global stream: on Faster R-CNN that moved the student's
      sampling, and a weight-0 run left its baseline by 0.5 mAP at the first evaluation.)
    - A distiller whose every loss has weight 0 teaches nothing, so its connectors are frozen:
      the optimizer and the gradient clip then see the student's parameters alone, as without
      a teacher. (Trainable, their zero gradients join the clip's total norm and reorder its
      float sum: on RetinaNet, whose study config clips at norm 10, that moved a clipped step
      in the last bit at iteration 148 and the run off the baseline's from 151 on.)
    Validation and testing run the student alone, as ``SingleTeacherDistill`` does.
    """

    def __init__(self, architecture, **kwargs) -> None:
        if isinstance(architecture, dict):
            architecture = MODELS.build(architecture)
        with torch.random.fork_rng(devices=[]):
            super().__init__(architecture=architecture, **kwargs)
        if not self.teacher_trainable:
            self.teacher.register_forward_pre_hook(self._fork_rng)
            self.teacher.register_forward_hook(self._join_rng)
        weights = [getattr(loss, 'loss_weight', None)
                   for loss in self.distiller.distill_losses.values()]
        if weights and all(w == 0 for w in weights):
            self.distiller.requires_grad_(False)

    def init_weights(self) -> None:
        """The student first, drawing what it draws without a teacher; the rest (a teacher
        without a checkpoint, connectors) from a forked stream, so that training starts from
        the random state it would have without a teacher (the student's dropout masks)."""
        if not self.architecture.is_init:
            self.architecture.init_weights()
        with torch.random.fork_rng(devices=[]):
            super().init_weights()

    def _fork_rng(self, module, args) -> None:
        devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        self._teacher_rng = torch.random.fork_rng(devices=devices)
        self._teacher_rng.__enter__()

    def _join_rng(self, module, args, output) -> None:
        """Restores the random state of before the teacher's forward (the forward pre-hook's)."""
        rng, self._teacher_rng = self._teacher_rng, None
        rng.__exit__(None, None, None)

    def train(self, mode: bool = True) -> 'FrozenTeacherDistill':
        super().train(mode)
        if not self.teacher_trainable:
            self.teacher.eval()
        return self


@MODELS.register_module()
class PixelKLDivergence(nn.Module):
    """tau^2 * KL(softmax(teacher / tau) || softmax(student / tau)) at each pixel of (N, C, H, W)
    logits, averaged over the pixels: the footing of the decode head's cross-entropy (and of
    IPSD's term), so ``loss_weight=1`` weighs a pixel's KD as its cross-entropy.

    Args:
        tau (float): the temperature. Defaults to 1.0.
        loss_weight (float): the weight of the loss. Defaults to 1.0.
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f'PixelKLDivergence: tau must be > 0, got {tau}')
        self.tau, self.loss_weight = tau, loss_weight

    def forward(self, preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
        if preds_S.shape != preds_T.shape:
            raise ValueError(f'PixelKLDivergence: student logits {tuple(preds_S.shape)} and '
                             f'teacher logits {tuple(preds_T.shape)} differ: both need the '
                             'same classes and output size')
        log_q = F.log_softmax(preds_S / self.tau, dim=1)
        log_p = F.log_softmax(preds_T.detach() / self.tau, dim=1)
        kl = (log_p.exp() * (log_p - log_q)).sum(dim=1)
        return self.loss_weight * self.tau**2 * kl.mean()

    def extra_repr(self) -> str:
        return f'tau={self.tau}, loss_weight={self.loss_weight}'


def _num_levels(model: dict) -> int:
    return model['neck'].get('num_outs', len(model['neck']['in_channels']))


def distill_model(student: dict, teacher: dict, teacher_ckpt: Optional[str], recipe: str,
                  loss_weight: float, tau: float = 1.0, levels: Optional[int] = None,
                  student_scope: str = 'mmseg', teacher_scope: Optional[str] = None) -> dict:
    """The model config of ``student`` distilled from ``teacher`` (a frozen, trained model)
    with ``recipe``:

    - ``cwd``: MMRazor's channel-wise divergence on the decode head's logits (its Cityscapes
      recipe: ``tau=1``, ``loss_weight=5``);
    - ``kl``: :class:`PixelKLDivergence` on the same logits;
    - ``pkd``: MMRazor's PKD on the first ``levels`` FPN outputs (its recipe: 4 levels, weight
      6 for Faster R-CNN, 10 for RetinaNet), through a 1x1 connector on the student's side
      where the student's FPN is narrower than the teacher's.
    """
    if recipe not in RECIPES:
        raise ValueError(f'distill_model: recipe {recipe!r} is not one of {sorted(RECIPES)}')
    loss_type = RECIPES[recipe][1]
    student = dict(copy.deepcopy(student), _scope_=student_scope)
    teacher = dict(copy.deepcopy(teacher), _scope_=teacher_scope or student_scope)
    connectors, losses, mappings = {}, {}, {}
    if recipe in ('cwd', 'kl'):
        recorders = dict(logits=dict(type='ModuleOutputs', source='decode_head.conv_seg'))
        losses['loss_' + recipe] = dict(type=loss_type, tau=tau, loss_weight=loss_weight)
        mappings['loss_' + recipe] = dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'))
    else:
        if 'neck' not in student or 'neck' not in teacher:
            raise ValueError('distill_model: recipe pkd needs a neck (FPN) in student and teacher')
        recorders = dict(fpn=dict(type='ModuleOutputs', source='neck'))
        levels = levels or min(4, _num_levels(student))
        widths = student['neck']['out_channels'], teacher['neck']['out_channels']
        for level in range(levels):
            name = f'loss_pkd_fpn{level}'
            losses[name] = dict(type=loss_type, loss_weight=loss_weight)
            preds_S = dict(from_student=True, recorder='fpn', data_idx=level)
            if widths[0] != widths[1]:
                connectors[f'fpn{level}'] = dict(
                    type='ConvModuleConnector', in_channel=widths[0], out_channel=widths[1],
                    kernel_size=1, norm_cfg=None, act_cfg=None)
                preds_S['connector'] = f'fpn{level}'
            mappings[name] = dict(preds_S=preds_S,
                                  preds_T=dict(from_student=False, recorder='fpn',
                                               data_idx=level))
    return dict(
        _scope_='mmrazor', type='FrozenTeacherDistill', architecture=student, teacher=teacher,
        teacher_ckpt=teacher_ckpt,
        # the student's own (None): not the Runner's top-level data_preprocessor, which a
        # student config's model base may define without the student's settings
        data_preprocessor=None,
        distiller=dict(type='ConfigurableDistiller', student_recorders=recorders,
                       teacher_recorders=copy.deepcopy(recorders), connectors=connectors or None,
                       distill_losses=losses, loss_forward_mappings=mappings))


def distill_config(cfg, teacher: dict, teacher_ckpt: Optional[str], recipe: str,
                   **options) -> None:
    """Make the student config ``cfg`` (an mmengine ``Config``) its teacher-KD config in place:
    the model wrapped by :func:`distill_model` (``options``: its ``loss_weight``, ``tau``,
    ``levels``), ``ipsd_mm.kd`` imported. The teacher is built in the student's scope."""
    cfg.model = distill_model(cfg.model.to_dict(), dict(teacher), teacher_ckpt, recipe,
                              student_scope=cfg.get('default_scope', 'mmengine'), **options)
    imports = cfg.get('custom_imports') or dict(imports=[])
    names = list(imports.get('imports', []))
    cfg.custom_imports = dict(imports, imports=names + ['ipsd_mm.kd'] * ('ipsd_mm.kd' not in names))


def student_checkpoint(src: str, dst: str) -> dict:
    """Write the student of distillation checkpoint ``src`` to ``dst`` as a plain checkpoint of
    the student's config (``architecture.`` stripped; teacher, distiller and optimizer state
    left out); returns what was written. Loads Runner checkpoints on torch >= 2.6
    (``ipsd_mm.compat``), which MMRazor's ``convert_kd_ckpt_to_student.py`` cannot."""
    ckpt = torch.load(src, map_location='cpu', weights_only=True)
    state = ckpt.get('state_dict', ckpt)
    prefix = 'architecture.'
    student = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not student:
        raise ValueError(f'{src}: no "{prefix}*" weights: not a distillation checkpoint '
                         '(FrozenTeacherDistill / SingleTeacherDistill)')
    meta = dict(ckpt.get('meta', {}), converted_from=src)
    out = dict(state_dict=student, meta=meta)
    torch.save(out, dst)
    return out
