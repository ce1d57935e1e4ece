"""The demo: DigitScenes on the CPU, baseline vs IPSD, for segmentation and detection.

The accuracy study's models (quarter-width DeepLabV3 and RetinaNet on 64x64 scenes), started
from its pretrained backbones (made once, cached in work_dirs/pretrained), on a schedule short
enough for about 15 minutes on 2 cores, so that the table compares trained models. Each run
trains in its own process with its log in ``<work-dir>/logs``; the terminal gets one line per
run, the table, the study's own figure for the same data (mean paired difference of its best
point per model, from benchmarks/accuracy_study.jsonl) and pictures of intra-class pairs.

    python tools/run_demo.py [--data printed|handwritten] [--work-dir work_dirs/demo]
"""
import argparse
import os
import os.path as osp
import subprocess
import sys

from mmengine.logging import print_log

import accuracy_study as study
from ipsd_mm.testing.digit_configs import ensure_data

TOOLS = osp.dirname(osp.abspath(__file__))

ITERS = dict(deeplabv3=3000, retinanet=2000)  # the demo's schedules (the study's: 4000, 6000)


def parse_args():
    parser = argparse.ArgumentParser(description='Baseline vs IPSD on DigitScenes (CPU)')
    parser.add_argument('--data', choices=study.DATA, default='printed',
                        help='the glyphs of the scenes (the study found no regime where IPSD '
                             'gains; printed is the default)')
    parser.add_argument('--work-dir', default=osp.join(study.ROOT, 'work_dirs', 'demo'))
    parser.add_argument('--data-root', help="default: the study's folder for --data")
    parser.add_argument('--pretrained-dir', default=osp.join(study.ROOT, 'work_dirs', 'pretrained'),
                        help="the pretrained backbones (the study's, made there once)")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-pairs', type=int, default=6, help='pair pictures per task')
    parser.add_argument('--quick', action='store_true', help='tiny data and schedule: a smoke run')
    return parser.parse_args()


def study_args(model: str, args) -> argparse.Namespace:
    iters = 4 if args.quick else ITERS[model]
    return study.parse_args(
        ['--models', model, '--variants', 'baseline', 'ipsd', '--seeds', str(args.seed),
         '--iters', str(iters), '--val-interval', str(iters), '--data', args.data,
         '--results', osp.join(args.work_dir, 'results.jsonl'),
         '--work-dir', osp.join(args.work_dir, 'runs'), '--pretrained-dir', args.pretrained_dir]
        + (['--data-root', args.data_root] if args.data_root else [])
        + (['--quick'] if args.quick else []))


def main():
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    per_model = [study_args(model, args) for model in ITERS]
    first = per_model[0]
    ensure_data(first.data_root, num_train=first.num_train, num_val=first.num_val,
                num_test=first.num_test, glyphs=args.data, **study.SCENES)
    done = study.load_records(first.results)
    here = study.machine()
    specs = [spec for a in per_model for spec in study.plan(a, done, here)]
    print_log(f'demo: {len(specs)} runs ({args.data} DigitScenes, pretrained backbones; logs '
              f"in {osp.join(first.work_dir, 'logs')})", logger='current')
    os.makedirs(osp.join(first.work_dir, 'logs'), exist_ok=True)
    study.run_specs(specs, 2, osp.join(first.work_dir, 'logs'), first.results, done)
    rows = [r for r in done if r.get('data', 'printed') == args.data]
    print(study.table(rows))
    print(study_figure(args.data))
    for model, config in (('deeplabv3', 'seg'), ('retinanet', 'det')):
        out = osp.join(args.work_dir, 'pairs', config)
        draw_pairs(study.MODELS[model][0] + '_ipsd.py', first.data_root, out, args, first)
        print(f'pairs ({config}): {out}')


def draw_pairs(config: str, data_root: str, out: str, args, first) -> None:
    """tools/browse_pairs.py on the study's IPSD config, in a process of its own whose output
    (the datasets' loading lines, MMEngine's scope and deprecation warnings) goes to the logs."""
    os.makedirs(out, exist_ok=True)
    log = osp.join(first.work_dir, 'logs', f'pairs_{osp.basename(out)}.log')
    script = (f'import sys; sys.path.insert(0, {TOOLS!r})\n'
              'from mmengine.config import Config\n'
              'from browse_pairs import browse\n'
              'from ipsd_mm.testing.digit_configs import point_to\n'
              f'cfg = Config.fromfile({osp.join(study.CONFIGS, config)!r})\n'
              f'point_to(cfg._cfg_dict, {data_root!r})\n'
              f'browse(cfg, {out!r}, {args.num_pairs}, {args.seed})\n')
    with open(log, 'w') as f:
        if subprocess.run([sys.executable, '-c', script], stdout=f, stderr=subprocess.STDOUT,
                          cwd=TOOLS).returncode:
            raise RuntimeError(f'drawing the pairs of {config} failed; its log: {log}')


def study_figure(data: str) -> str:
    """What the accuracy study measured on the same kind of data, from its results file."""
    points = study.best_points(study.load_records(study.RESULTS), data)
    lines = [f'The accuracy study on {data} DigitScenes (val, full schedules, its best IPSD '
             'point per model, paired difference to the baseline of the same seed):']
    for model, point, mean, ci, n in points:
        interval = f' [{ci[0]:+.2f}, {ci[1]:+.2f}]' if ci else ''
        lines.append(f'  {model} {point}: {mean:+.2f}{interval} over {n} seed(s)')
    if not points:
        lines.append('  none measured')
    lines.append('  (BENCHMARKS.md, "Regimes", says where IPSD gains and where it does not.)')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
