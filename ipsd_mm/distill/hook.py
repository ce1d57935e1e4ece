"""``IPSDHook``: adds the intra-class distillation term to a model's training loss."""
import inspect
import math
from functools import partial
from typing import Any, Callable, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import nn

from ..pair_meta import evaluation_refusal
from ..validate import to_bool, to_choice, to_int, to_number
from .adapter import Adapter, build_adapter
from .loss import PairedDistillLoss
from .pairs import check_pair_metadata

MODES = ('region', 'pixel')
#: the options IPSDHook passes to PairedDistillLoss, which owns their defaults
LOSS_OPTIONS = tuple(inspect.signature(PairedDistillLoss).parameters)


@HOOKS.register_module()
class IPSDHook(Hook):
    """Instance-to-instance distillation between the members of intra-class pairs.

    At ``before_run`` it builds the adapter for the model's family and wraps the (DDP-unwrapped)
    model's ``loss`` with :meth:`loss_with_ipsd`, so the term is computed inside the DDP forward
    and under AMP autocast: the returned dict gains ``loss_ipsd`` (``loss_weight`` times the
    paired KL normalised as the task's classification loss is, ramped up linearly over
    ``warmup_iters``) and the counts ``ipsd_pairs``, ``ipsd_regions`` or ``ipsd_instances``,
    ``ipsd_empty_pairs`` (pairs that shared nothing) and ``ipsd_gated`` (pairs the gate dropped).
    Inference is untouched. Use it with ``IntraClassPairDataset`` and ``pair_collate``; the
    method and every option are described in ``docs/method.md``. One hook per model.

    Args:
        loss_weight (float): weight of the distillation term; 1 gives a distilled pixel or
            instance the weight one element of the task's classification loss has. Defaults
            to 1.0.
        mode (str): segmentation only: ``'region'`` (region-mean logits) or ``'pixel'`` (the
            teacher's region distribution into every student pixel). Defaults to ``'region'``.
        warmup_iters (int): iterations over which the weight ramps up from 0. Defaults to 0.
        use_aux (bool): segmentation only: distil the auxiliary head's logits too, logged as
            ``loss_ipsd_aux0``… Defaults to False.
        **loss_options: the paired KL's ``temperature``, ``gate`` and ``gate_threshold``; their
            defaults and meaning live once, in :class:`PairedDistillLoss`.
    """
    priority = 'NORMAL'

    def __init__(self, loss_weight: float = 1.0, mode: str = 'region', warmup_iters: int = 0,
                 use_aux: bool = False, **loss_options: Any) -> None:
        self.loss_weight = to_number(loss_weight, 'IPSDHook: loss_weight', 0.0)
        self.mode = to_choice(mode, 'IPSDHook: mode', MODES)
        self.warmup_iters = to_int(warmup_iters, 'IPSDHook: warmup_iters', 0)
        self.use_aux = to_bool(use_aux, 'IPSDHook: use_aux')
        unknown = sorted(set(loss_options) - set(LOSS_OPTIONS))
        if unknown:
            raise TypeError(f'IPSDHook has no option {", ".join(unknown)}; its options: '
                            'loss_weight, mode, warmup_iters, use_aux, ' + ', '.join(LOSS_OPTIONS))
        self.loss = PairedDistillLoss(**loss_options)
        self.adapter: Optional[Adapter] = None
        self._model: Optional[nn.Module] = None
        self._iter = 0
        self._warned_not_finite = False

    def weight(self) -> float:
        """``loss_weight``, ramped up over ``warmup_iters``."""
        if self.warmup_iters == 0:
            return self.loss_weight
        return self.loss_weight * min(1.0, (self._iter + 1) / self.warmup_iters)

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        wrapped = vars(model).get('loss')
        if isinstance(wrapped, partial) and isinstance(
                getattr(wrapped.func, '__self__', None), IPSDHook):
            raise ValueError('IPSDHook: a second IPSDHook on the same model (custom_hooks holds '
                             'two, e.g. a child config added one to its base): keep one and set '
                             'its options there')
        _refuse_pair_evaluation(runner)
        self.adapter = build_adapter(model, self.loss, self.mode, self.use_aux,
                                     num_classes=_train_classes(runner))
        model.loss = partial(self.loss_with_ipsd, model.loss)
        self._model = model
        runner.logger.info(f'IPSDHook: {type(self.adapter).__name__} on {type(model).__name__} '
                           f'(loss_weight={self.loss_weight}, {self.loss!r}, mode={self.mode}, '
                           f'warmup_iters={self.warmup_iters})')

    def loss_with_ipsd(self, task_loss: Callable, inputs, data_samples, *args, **kwargs) -> dict:
        """The model's own ``loss`` (``task_loss``) plus ``loss_ipsd`` and its counts.

        mmdet names the arguments batch_inputs/batch_data_samples, mmseg inputs/data_samples;
        the models' forward passes both positionally, as this expects."""
        try:
            with self.adapter.recording():
                losses = task_loss(inputs, data_samples, *args, **kwargs)
            terms, stats = self.adapter.terms(data_samples)
        finally:
            self.adapter.recorder.clear()
        weight = self.weight()
        for key, value in terms.items():
            losses[key] = value * weight
        # Logged, not summed (no 'loss' in their names). Tensors stay where they are and host
        # numbers stay on the host: mmengine reads them after the step, so nothing here waits
        # for the device.
        for key, value in stats.items():
            losses[key] = value.detach().float() if isinstance(value, torch.Tensor) \
                else torch.tensor(float(value))
        return losses

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

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Says once when the term is not finite (inf or NaN logits, a diverged model), rather
        than passing NaN on silently. Reads the values mmengine's RuntimeInfoHook already
        took to the host, so a finite step waits for nothing."""
        if self._warned_not_finite or not outputs:
            return
        hub = runner.message_hub
        values = {key: hub.get_scalar(f'train/{key}').current() for key in outputs
                  if key.startswith('loss_ipsd') and f'train/{key}' in hub.log_scalars}
        bad = {key: value for key, value in values.items() if not math.isfinite(value)}
        if bad:
            task = {key: hub.get_scalar(f'train/{key}').current() for key in outputs
                    if key == 'loss' and 'train/loss' in hub.log_scalars}
            runner.logger.warning(
                f'IPSDHook: {", ".join(f"{k}={v}" for k, v in bad.items())} at iteration '
                f'{runner.iter + 1}: the logits it distils, recorded from '
                f'{self.adapter.sources()} ({type(self.adapter).__name__}), are not finite '
                f'(inf or NaN){"; the total loss is " + str(task["loss"]) if task else ""}. '
                'The model has diverged or its input holds inf/NaN: lower the learning rate, '
                'clip gradients (optim_wrapper.clip_grad) or check the data. Said once.')
            self._warned_not_finite = True

    def after_run(self, runner) -> None:
        if self.adapter is not None:
            self.adapter.remove()
            del self._model.loss  # the class's own loss again
            self.adapter, self._model = None, None


def _refuse_pair_evaluation(runner) -> None:
    """A val or test loop on IntraClassPairDataset would score swapped, randomly paired images
    (and each twice): refused, naming the loop, before the run (the test loop too, which the
    Runner builds only when it tests; the pair dataset refuses the loops that read it)."""
    for loop in ('val', 'test'):
        loader = getattr(runner, f'_{loop}_dataloader', None)  # a config or a DataLoader
        dataset = loader.get('dataset') if isinstance(loader, dict) else getattr(
            loader, 'dataset', None)
        name = dataset.get('type', '') if isinstance(dataset, dict) else type(dataset).__name__
        if 'IntraClassPairDataset' in str(name):
            raise ValueError(evaluation_refusal('IPSDHook', loop))


def _train_classes(runner) -> Optional[int]:
    """How many classes the train dataset has, when it says."""
    try:
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
    except Exception:  # no train dataloader (e.g. a test run) or an unusual dataset
        return None
    return len(classes) if classes is not None else None
