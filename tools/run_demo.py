"""The demo: DigitScenes on the CPU, baseline vs IPSD, for segmentation and detection.

Generates DigitScenes (once), trains the demo baseline and IPSD configs of each task, evaluates
them on the validation split (unseen handwriting), draws intra-class pairs, and prints a table:
mIoU / bbox mAP, seconds per iteration, and the IPSD/baseline time ratio.

    python tools/run_demo.py [--iters 250] [--tasks seg det] [--work-dir work_dirs/demo]
"""
import argparse
import json
import os.path as osp

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

import ipsd_mm  # noqa: F401  (compat, registrations)
from browse_pairs import browse
from make_digit_scenes import make_digit_scenes

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'demo')
EXPERIMENTS = {
    'seg': ('deeplabv3_r18-d8_digit-scenes', 'val/mIoU', 'mIoU (%)'),
    'det': ('retinanet_r18_fpn_digit-scenes', 'val/coco/bbox_mAP', 'bbox mAP (%)'),
}


def parse_args():
    parser = argparse.ArgumentParser(description='Baseline vs IPSD on DigitScenes (CPU)')
    parser.add_argument('--data-root', default='data/digit_scenes')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--iters', type=int, default=250, help='training iterations per run')
    parser.add_argument('--tasks', nargs='+', choices=sorted(EXPERIMENTS), default=['seg', 'det'])
    parser.add_argument('--num-train', type=int, default=300)
    parser.add_argument('--num-val', type=int, default=60)
    parser.add_argument('--num-pairs', type=int, default=6, help='pair pictures per task')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


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


def train(config: str, args, metric_key: str) -> dict:
    cfg = Config.fromfile(osp.join(CONFIGS, config + '.py'))
    point_to(cfg._cfg_dict, args.data_root)
    set_schedule(cfg, args.iters)
    cfg.randomness = dict(seed=args.seed)
    cfg.work_dir = osp.join(args.work_dir, config)
    runner = Runner.from_cfg(cfg)
    runner.train()
    times = np.asarray(runner.message_hub.get_scalar('train/time').data[0])
    # CocoMetric reports nothing when a barely trained model detects nothing: that scores 0.
    scalars = runner.message_hub.log_scalars
    metric = scalars[metric_key].current() if metric_key in scalars else 0.0
    return dict(metric=float(metric), sec_per_iter=float(times[min(5, len(times) - 1):].mean()))


def main():
    args = parse_args()
    ensure_data(args.data_root, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                glyphs='printed')
    rows = []
    for task in args.tasks:
        config, metric_key, metric_name = EXPERIMENTS[task]
        base = train(config, args, metric_key)
        ipsd = train(config + '_ipsd', args, metric_key)
        pairs_dir = osp.join(args.work_dir, 'pairs', task)
        cfg = Config.fromfile(osp.join(CONFIGS, config + '_ipsd.py'))
        point_to(cfg._cfg_dict, args.data_root)
        browse(cfg, pairs_dir, args.num_pairs, args.seed)
        rows.append(dict(task=task, config=config, metric=metric_name, baseline=base, ipsd=ipsd,
                         pairs=pairs_dir))
    with open(osp.join(args.work_dir, 'demo_results.json'), 'w') as f:
        json.dump(dict(iters=args.iters, rows=rows), f, indent=2)
    print(table(rows, args.iters))


def table(rows: list, iters: int) -> str:
    from prettytable import PrettyTable
    t = PrettyTable(['task', 'metric', 'baseline', 'IPSD', 'baseline s/iter', 'IPSD s/iter',
                     'IPSD/baseline time', 'pair pictures'])
    for r in rows:
        b, i = r['baseline'], r['ipsd']
        scale = 100 if r['task'] == 'det' else 1  # COCO mAP comes as a fraction
        t.add_row([r['task'], r['metric'], f"{b['metric'] * scale:.2f}",
                   f"{i['metric'] * scale:.2f}", f"{b['sec_per_iter']:.3f}",
                   f"{i['sec_per_iter']:.3f}", f"{i['sec_per_iter'] / b['sec_per_iter']:.2f}",
                   r['pairs']])
    return f'\nDigitScenes, {iters} iterations per run, CPU\n{t}'


if __name__ == '__main__':
    main()
