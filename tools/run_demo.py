"""The demo: DigitScenes on the CPU, baseline vs IPSD, for segmentation and detection.

Generates DigitScenes (once), trains the demo baseline and IPSD configs of each task, evaluates
them on the validation split (scenes no model trained on), draws intra-class pairs, and prints
a table: mIoU / bbox mAP, seconds per iteration, and the IPSD/baseline time ratio.

    python tools/run_demo.py [--iters 250] [--tasks seg det] [--work-dir work_dirs/demo]
"""
import argparse
import json
import os.path as osp

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

import ipsd_mm  # noqa: F401  (compat, registrations)
from browse_pairs import browse
from ipsd_mm.testing.digit_configs import ensure_data, point_to, set_schedule

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
