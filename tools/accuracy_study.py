"""What IPSD gains, measured: baseline vs IPSD vs "pairs without swap" on DigitScenes, over seeds.

Each (task, variant, seed) trains from scratch in its own process and is evaluated on val every
``--val-interval`` iterations, so the table can show that the baseline has converged. Results are
appended to ``WORK_DIR/results.jsonl`` as runs finish; a rerun skips the runs already there, so
an interrupted study resumes and a search adds rows.

    python tools/accuracy_study.py [--tasks seg det] [--seeds 0 1 2] [--jobs 2]
    python tools/accuracy_study.py --tasks seg --variants ipsd --tag w0.5 \\
        --ipsd-options hook.loss_weight=0.5 swap.patch_size=32   # one point of a search

Variants: ``baseline`` (the study's baseline config), ``ipsd`` (its IPSD config), ``noswap``
(the IPSD config with ``ipsd_swap.prob=0``: intra-class pairs and the distillation term, no
patch swap). ``--ipsd-options`` set options of the IPSD variants' ``IntraClassPatchSwap``
(``swap.<option>``) and ``IPSDHook`` (``hook.<option>``). ``--quick`` is a smoke run (tiny
data, a few iterations); its numbers mean nothing.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.logging import print_log

from run_demo import ensure_data

TOOLS = osp.dirname(osp.abspath(__file__))
CONFIGS = osp.join(osp.dirname(TOOLS), 'configs', 'study')
TASKS = {  # config, the val metric, its name, its scale to percent, iterations to converge
    'seg': ('deeplabv3_r18-d8-w16_digit-scenes', 'mIoU', 'mIoU (%)', 1, 4000),
    'det': ('retinanet_r18-w16_fpn_digit-scenes', 'coco/bbox_mAP', 'bbox mAP (%)', 100, 2000),
}
SCENES = dict(size=(64, 64), num_digits=(1, 3), scale=(14, 32), seed=0, glyphs='printed')
VARIANTS = ('baseline', 'ipsd', 'noswap')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS), default=['seg', 'det'])
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--iters', type=int,
                        help='iterations per run; default: the task\'s (seg 4000, det 2000)')
    parser.add_argument('--val-interval', type=int, default=500)
    parser.add_argument('--ipsd-options', nargs='+', action=DictAction, default={},
                        help='swap.<option>=value or hook.<option>=value for the IPSD variants')
    parser.add_argument('--tag', default='', help='names the IPSD variants of a search point')
    parser.add_argument('--jobs', type=int, default=2, help='runs in parallel, one thread each')
    parser.add_argument('--data-root', default='data/digit_scenes_study')
    parser.add_argument('--num-train', type=int, default=600)
    parser.add_argument('--num-val', type=int, default=150)
    parser.add_argument('--work-dir', default='work_dirs/accuracy_study')
    parser.add_argument('--quick', action='store_true', help='tiny data and schedule: a smoke run')
    parser.add_argument('--markdown', action='store_true', help='print the table as Markdown')
    parser.add_argument('--run-one', help=argparse.SUPPRESS)  # a child process: one run's JSON
    args = parser.parse_args(argv)
    if args.quick:
        args.iters, args.val_interval, args.num_train, args.num_val = 4, 2, 8, 4
        args.seeds = args.seeds[:1]
    for key in args.ipsd_options:
        target, _, name = key.partition('.')
        if target not in ('swap', 'hook') or not name:
            parser.error(f'--ipsd-options {key}: name swap.<option> (IntraClassPatchSwap) or '
                         'hook.<option> (IPSDHook)')
    if args.ipsd_options and not args.tag:
        parser.error('--ipsd-options need a --tag: it names the runs and their work dirs, which '
                     'would otherwise be those of the default IPSD runs')
    for task in args.tasks:
        iters = args.iters or TASKS[task][4]
        if iters % args.val_interval:
            parser.error(f'{task}: {iters} iterations are not a multiple of --val-interval '
                         f'{args.val_interval}: the last evaluation must be the final model')
    return args


class RecordVal(Hook):
    """Keeps (iteration, metric) of every validation; a metric that is missing (CocoMetric
    with no detections at all) scores 0."""

    def __init__(self, key: str):
        self.key, self.curve = key, []

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.curve.append((runner.iter, float((metrics or {}).get(self.key, 0.0))))


def run_one(spec: dict) -> dict:
    """Train one (task, variant, seed) in this process and return its curve."""
    import torch
    from mmengine.runner import Runner

    import ipsd_mm  # noqa: F401  (registrations, compat)
    from run_demo import point_to, set_schedule
    torch.set_num_threads(1)
    config, metric, _, scale, _ = TASKS[spec['task']]
    ipsd = spec['variant'] != 'baseline'
    cfg = Config.fromfile(osp.join(CONFIGS, config + ('_ipsd' if ipsd else '') + '.py'))
    point_to(cfg._cfg_dict, spec['data_root'])
    set_schedule(cfg, spec['iters'])
    cfg.train_cfg.val_interval = spec['val_interval']
    cfg.randomness = dict(seed=spec['seed'])
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    if ipsd:
        swap = cfg.train_dataloader.dataset.pipeline[0]
        hook = next(h for h in cfg.custom_hooks if h.type == 'IPSDHook')
        for key, value in spec['ipsd_options'].items():  # keys checked by parse_args
            target, _, name = key.partition('.')
            (swap if target == 'swap' else hook)[name] = value
        if spec['variant'] == 'noswap':
            swap.prob = 0.0
    cfg.work_dir = spec['work_dir']
    runner = Runner.from_cfg(cfg)
    record = RecordVal(metric)
    runner.register_hook(record, priority='LOWEST')
    runner.train()
    times = np.asarray(runner.message_hub.get_scalar('train/time').data[0])
    return dict(spec, curve=[(it, value * scale) for it, value in record.curve],
                swap=swap.to_dict() if ipsd else None, hook=hook.to_dict() if ipsd else None,
                sec_per_iter=float(times[min(5, len(times) - 1):].mean()))


def launch(spec: dict, log_dir: str) -> dict:
    name = f"{spec['task']}_{spec['variant']}{spec['tag']}_s{spec['seed']}"
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    log_file = osp.join(log_dir, name + '.log')
    with open(log_file, 'w') as log:
        proc = subprocess.run([sys.executable, __file__, '--run-one', json.dumps(spec)],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=TOOLS)
    if proc.returncode:
        raise RuntimeError(f'run {name} failed (exit {proc.returncode}); its log: {log_file}')
    with open(osp.join(spec['work_dir'], 'result.json')) as f:
        return json.load(f)


def key_of(spec: dict) -> tuple:
    return (spec['task'], spec['variant'], spec['tag'], spec['seed'], spec['iters'],
            json.dumps(spec['ipsd_options'], sort_keys=True))


def main(args) -> None:
    from mmengine.utils import ProgressBar
    work_dir = osp.abspath(args.work_dir)
    log_dir = osp.join(work_dir, 'logs')
    os.makedirs(log_dir, exist_ok=True)
    ensure_data(args.data_root, num_train=args.num_train, num_val=args.num_val, **SCENES)
    results_file = osp.join(work_dir, 'results.jsonl')
    done = []
    if osp.isfile(results_file):
        done = [json.loads(line) for line in open(results_file) if line.strip()]
    done_keys = {key_of(r) for r in done}
    specs = []
    for task in args.tasks:
        for variant in args.variants:
            for seed in args.seeds:
                ipsd = variant != 'baseline'
                spec = dict(task=task, variant=variant, seed=seed,
                            iters=args.iters or TASKS[task][4],
                            val_interval=args.val_interval, tag=args.tag if ipsd else '',
                            ipsd_options=dict(args.ipsd_options) if ipsd else {},
                            data_root=osp.abspath(args.data_root))
                spec['work_dir'] = osp.join(
                    work_dir, f"{task}_{variant}{spec['tag']}_s{seed}")
                if key_of(spec) not in done_keys:
                    specs.append(spec)
    print_log(f'{len(specs)} runs to do, {len(done)} already in {results_file}',
              logger='current')
    progress = ProgressBar(len(specs)) if specs else None
    with ThreadPoolExecutor(args.jobs) as pool, open(results_file, 'a') as out:
        for result in pool.map(lambda s: launch(s, log_dir), specs):
            out.write(json.dumps(result) + '\n')
            out.flush()
            done.append(result)
            progress.update()
    wanted = {(t, v, args.iters or TASKS[t][4]) for t in args.tasks for v in args.variants}
    rows = [r for r in done if (r['task'], r['variant'], r['iters']) in wanted]
    print(table(rows, args.markdown))


def table(results: list, markdown: bool = False) -> str:
    """One row per (task, variant, tag): the final metric per seed, mean ± std, the difference
    to the baseline's mean, and the mean metric at each evaluation (the learning curve)."""
    from prettytable import PrettyTable
    groups = {}
    for r in results:
        groups.setdefault((r['task'], r['variant'], r['tag'],
                           json.dumps(r['ipsd_options'], sort_keys=True)), []).append(r)
    t = PrettyTable(['task', 'metric', 'variant', 'options', 'seeds', 'final per seed',
                     'mean ± std', 'vs baseline', 'curve (mean at iteration)', 's/iter'])
    t.align = 'l'
    if markdown:
        import prettytable  # TableStyle from 3.12 on; MARKDOWN before
        t.set_style(getattr(prettytable, 'TableStyle', prettytable).MARKDOWN)
    for (task, variant, tag, options), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: r['seed'])
        finals = np.array([r['curve'][-1][1] for r in runs])
        base = groups.get((task, 'baseline', '', '{}'))
        delta = ''
        if base and variant != 'baseline':
            delta = f"{finals.mean() - np.mean([r['curve'][-1][1] for r in base]):+.2f}"
        iters = [it for it, _ in runs[0]['curve']]
        curve = np.mean([[v for _, v in r['curve']] for r in runs], axis=0)
        t.add_row([task, TASKS[task][2], variant + tag, options if options != '{}' else '',
                   ' '.join(str(r['seed']) for r in runs),
                   ' '.join(f'{v:.2f}' for v in finals),
                   f'{finals.mean():.2f} ± {finals.std(ddof=1):.2f}' if len(finals) > 1
                   else f'{finals.mean():.2f}',
                   delta, ' '.join(f'{v:.1f}@{it}' for it, v in zip(iters, curve)),
                   f"{np.mean([r['sec_per_iter'] for r in runs]):.3f}"])
    return f'\nDigitScenes accuracy study (std: sample standard deviation over seeds)\n{t}'


if __name__ == '__main__':
    args = parse_args()
    if args.run_one:
        sys.path.insert(0, TOOLS)
        result = run_one(json.loads(args.run_one))
        with open(osp.join(result['work_dir'], 'result.json'), 'w') as f:
            json.dump(result, f)
    else:
        main(args)
