"""``IPSDHook``: adds the intra-class distillation term to a model's training loss."""
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from .adapters import Adapter, build_adapter, check_pair_metadata
from .loss import PairedDistillLoss


@HOOKS.register_module()
class IPSDHook(Hook):
    """Instance-to-instance distillation between the members of intra-class pairs.

    At ``before_run`` it builds the loss (temperature, gate) and the adapter for the model's
    family, and wraps the (DDP-unwrapped) model's ``loss``, so the term is computed inside the
    DDP forward and under AMP autocast: the returned dict gains ``loss_ipsd`` (``loss_weight``
    times the paired KL normalised as the task's classification loss is, ramped up linearly over
    ``warmup_iters``) and the counts ``ipsd_pairs``, ``ipsd_regions`` or ``ipsd_instances``,
    ``ipsd_empty_pairs`` (pairs that shared nothing) and ``ipsd_gated`` (pairs the gate dropped).
    Inference is untouched. Use it with ``IntraClassPairDataset`` and ``pair_collate``; the
    method and every option are described in ``docs/method.md``.

    Args:
        loss_weight (float): weight of the distillation term; 1 gives a distilled pixel or
            instance the weight one element of the task's classification loss has. Defaults
            to 1.0.
        temperature (float): softmax/sigmoid temperature T; the term is scaled by T².
            Defaults to 4.0.
        gate (str): which pairs distil: ``'none'``, ``'argmax'`` (the teacher's top class is
            the shared class) or ``'threshold'`` (its probability of it >= ``gate_threshold``).
            Defaults to ``'none'``.
        gate_threshold (float): the teacher probability ``gate='threshold'`` needs. Defaults
            to 0.5.
        mode (str): segmentation only: ``'region'`` (region-mean logits) or ``'pixel'`` (the
            teacher's region distribution into every student pixel). Defaults to ``'region'``.
        warmup_iters (int): iterations over which the weight ramps up from 0. Defaults to 0.
        use_aux (bool): segmentation only: distil the auxiliary head's logits too, logged as
            ``loss_ipsd_aux0``… Defaults to False.
    """
    priority = 'NORMAL'

    def __init__(self, loss_weight: float = 1.0, temperature: float = 4.0, gate: str = 'none',
                 gate_threshold: float = 0.5, mode: str = 'region', warmup_iters: int = 0,
                 use_aux: bool = False) -> None:
        if mode not in ('region', 'pixel'):
            raise ValueError(f"IPSDHook: mode must be 'region' or 'pixel', got {mode!r}")
        if (isinstance(loss_weight, bool) or not isinstance(loss_weight, (int, float))
                or not math.isfinite(loss_weight) or loss_weight < 0):
            raise ValueError(f'IPSDHook: loss_weight must be a finite number >= 0, got '
                             f'{loss_weight!r}')
        if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f'IPSDHook: warmup_iters must be an int >= 0, got {warmup_iters!r}')
        if not isinstance(use_aux, bool):
            raise ValueError(f'IPSDHook: use_aux must be True or False, got {use_aux!r}')
        self.loss = PairedDistillLoss(temperature, gate, gate_threshold)
        self.loss_weight = float(loss_weight)
        self.mode = mode
        self.warmup_iters = warmup_iters
        self.use_aux = use_aux
        self.adapter: Optional[Adapter] = None
        self._iter = 0

    def weight(self) -> float:
        if self.warmup_iters == 0:
            return self.loss_weight
        return self.loss_weight * min(1.0, (self._iter + 1) / self.warmup_iters)

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.adapter = build_adapter(model, self.loss, self.mode, self.use_aux,
                                     num_classes=_train_classes(runner))
        original_loss = model.loss
        hook = self

        def loss_with_ipsd(inputs, data_samples, *args, **kwargs):
            # mmdet names them batch_inputs/batch_data_samples, mmseg inputs/data_samples; the
            # models' forward passes both positionally, as this wrapper expects.
            adapter = hook.adapter
            try:
                with adapter.recording():
                    losses = original_loss(inputs, data_samples, *args, **kwargs)
                terms, stats = adapter.terms(data_samples)
            finally:
                adapter.recorder.clear()
            weight = hook.weight()
            for key, value in terms.items():
                losses[key] = value * weight
            # Logged, not summed (no 'loss' in their names). Tensors stay where they are and
            # host numbers stay on the host: mmengine reads them after the step, so nothing
            # here waits for the device.
            for key, value in stats.items():
                losses[key] = value.detach().float() if isinstance(value, torch.Tensor) \
                    else torch.tensor(float(value))
            return losses

        model.loss = loss_with_ipsd
        self._model = model
        runner.logger.info(f'IPSDHook: {type(self.adapter).__name__} on {type(model).__name__} '
                           f'(loss_weight={self.loss_weight}, {self.loss!r}, mode={self.mode}, '
                           f'warmup_iters={self.warmup_iters})')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._iter = runner.iter
        if data_batch is None:
            return
        # Checked here, before the data preprocessor fails on it with an unrelated message.
        if not (isinstance(data_batch, dict) and 'data_samples' in data_batch):
            raise TypeError(f'IPSDHook: the train batch is a {type(data_batch).__name__}, not '
                            "the dict of inputs and data_samples pair_collate makes: set the "
                            "train dataloader's collate_fn=dict(type='pair_collate')")
        check_pair_metadata(data_batch['data_samples'])

    def after_run(self, runner) -> None:
        if self.adapter is not None:
            self.adapter.remove()
            del self._model.loss  # the class's own loss again
            self.adapter = None


def _train_classes(runner) -> Optional[int]:
    """How many classes the train dataset has, when it says."""
    try:
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
    except Exception:  # no train dataloader (e.g. a test run) or an unusual dataset
        return None
    return len(classes) if classes is not None else None
