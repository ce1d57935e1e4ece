"""``IPSDHook``: adds the intra-class distillation term to a model's training loss."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from .adapters import Adapter, build_adapter


@HOOKS.register_module()
class IPSDHook(Hook):
    """Instance-to-instance distillation between the members of intra-class pairs.

    At ``before_run`` it picks the adapter for the model's family and wraps the (DDP-unwrapped)
    model's ``loss``, so the term is computed inside the DDP forward and under AMP autocast: the
    returned dict gains ``loss_ipsd`` (``loss_weight`` times the mean paired KL, ramped up
    linearly over ``warmup_iters``) and the counts ``ipsd_pairs``, ``ipsd_regions`` or
    ``ipsd_instances``, and ``ipsd_empty_pairs`` (pairs that shared nothing and added zero).
    Inference is untouched. Use it with ``IntraClassPairDataset`` and ``pair_collate``.

    Args:
        loss_weight (float): weight of the distillation term. Defaults to 1.0.
        temperature (float): softmax temperature T; the term is scaled by T². Defaults to 4.0.
        mode (str): segmentation only: ``'region'`` (region-mean logits) or ``'pixel'`` (the
            teacher's region distribution into every student pixel). Defaults to ``'region'``.
        warmup_iters (int): iterations over which the weight ramps up from 0. Defaults to 0.
        use_aux (bool): segmentation only: distil the auxiliary head's logits too, logged as
            ``loss_ipsd_aux0``… Defaults to False.
    """
    priority = 'NORMAL'

    def __init__(self, loss_weight: float = 1.0, temperature: float = 4.0,
                 mode: str = 'region', warmup_iters: int = 0, use_aux: bool = False) -> None:
        if mode not in ('region', 'pixel'):
            raise ValueError(f"IPSDHook: mode must be 'region' or 'pixel', got {mode!r}")
        if not temperature > 0:
            raise ValueError(f'IPSDHook: temperature must be > 0, got {temperature!r}')
        if not loss_weight >= 0:
            raise ValueError(f'IPSDHook: loss_weight must be >= 0, got {loss_weight!r}')
        if not isinstance(warmup_iters, int) or warmup_iters < 0:
            raise ValueError(f'IPSDHook: warmup_iters must be an int >= 0, got {warmup_iters!r}')
        self.loss_weight = float(loss_weight)
        self.temperature = float(temperature)
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
        self.adapter = build_adapter(model, self.mode, self.temperature, self.use_aux)
        original_loss = model.loss
        hook = self

        def loss_with_ipsd(inputs, data_samples, *args, **kwargs):
            # mmdet names them batch_inputs/batch_data_samples, mmseg inputs/data_samples; the
            # models' forward passes both positionally, as this wrapper expects.
            recorder = hook.adapter.recorder
            recorder.outputs.clear()
            recorder.recording = True
            try:
                losses = original_loss(inputs, data_samples, *args, **kwargs)
            finally:
                recorder.recording = False
            terms, stats = hook.adapter.terms(data_samples)
            recorder.outputs.clear()  # do not keep the graph alive past the step
            weight = hook.weight()
            for key, value in terms.items():
                losses[key] = value * weight
            device = next(iter(terms.values())).device
            for key, value in stats.items():
                losses[key] = torch.tensor(float(value), device=device)
            return losses

        model.loss = loss_with_ipsd
        self._model = model
        runner.logger.info(f'IPSDHook: {type(self.adapter).__name__} on {type(model).__name__} '
                           f'(loss_weight={self.loss_weight}, temperature={self.temperature}, '
                           f'mode={self.mode}, warmup_iters={self.warmup_iters})')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._iter = runner.iter

    def after_run(self, runner) -> None:
        if self.adapter is not None:
            self.adapter.remove()
            del self._model.loss  # the class's own loss again
            self.adapter = None
