"""What the demo, the accuracy study, the benchmarks and the tests do to a DigitScenes config:
point it at a data folder (and an evaluation split), set a schedule, and write the data once."""
import json
import os.path as osp

from mmengine.config import Config
from mmengine.logging import print_log

from .digit_scenes import make_digit_scenes


def point_to(node, root: str):
    """Every ``data_root`` in a config points at ``root``; so does CocoMetric's ann_file."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'data_root':
                node[key] = osp.join(root, '')
            elif key == 'ann_file' and node.get('type') == 'CocoMetric':
                node[key] = osp.join(root, 'annotations', 'val.json')
            else:
                point_to(value, root)
    elif isinstance(node, (list, tuple)):
        for value in node:
            point_to(value, root)


def set_schedule(cfg: Config, iters: int) -> None:
    """``iters`` iterations: warm-up over the first tenth, cosine decay, one evaluation and one
    checkpoint at the end."""
    warmup = max(1, min(40, iters // 10))
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=warmup),
        dict(type='CosineAnnealingLR', T_max=max(1, iters - warmup), eta_min=1e-5,
             by_epoch=False, begin=warmup, end=iters)]


def ensure_data(root: str, **options) -> None:
    """DigitScenes with ``options`` (make_digit_scenes' arguments) in ``root``, written unless
    the same options wrote it before."""
    stamp = osp.join(root, 'options.json')
    if osp.isfile(stamp) and json.load(open(stamp)) == json.loads(json.dumps(options)):
        print_log(f'DigitScenes already in {root}', logger='current')
        return
    make_digit_scenes(root, **options)
    with open(stamp, 'w') as f:
        json.dump(options, f)


def evaluate_on(cfg: Config, split: str) -> None:
    """The val and test loops (dataloaders and evaluators) read ``split`` ('val' or 'test')."""
    for name in ('val_dataloader', 'test_dataloader'):
        dataset = cfg[name].dataset
        if 'seg_map_path' in dataset.data_prefix:
            dataset.data_prefix = dict(img_path=f'images/{split}', seg_map_path=f'labels/{split}')
        else:
            dataset.ann_file = f'annotations/{split}.json'
            dataset.data_prefix = dict(img=f'images/{split}/')
    for name in ('val_evaluator', 'test_evaluator'):
        if cfg[name].get('type') == 'CocoMetric':
            cfg[name].ann_file = osp.join(osp.dirname(cfg[name].ann_file), f'{split}.json')
