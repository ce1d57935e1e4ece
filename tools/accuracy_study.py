"""What IPSD gains, measured: baseline vs IPSD and its ablations on DigitScenes, over seeds.

Models (``--models``): ``deeplabv3`` (segmentation, mIoU), ``retinanet`` (one-stage, sigmoid
KD) and ``faster-rcnn`` (two-stage, softmax KD), the study configs in ``configs/study/``.
Variants (``--variants``): ``baseline``; ``ipsd`` (the IPSD config); ``noswap`` (IPSD with
``swap.prob=0``: pairs and distillation, no swap); ``noKD`` (IPSD with
``hook.loss_weight=0``: pairs and swap, no distillation); ``teacher`` (the model at
``--teacher-width`` base channels, trained once per data set and start, seed 0: its own row);
``kd`` (the student distilled from that teacher through MMRazor, ``ipsd_mm.kd``, with the
recipe of ``--kd-options``: the positive control). Starts (``--starts``): ``scratch``,
or ``pretrained`` (the backbone pretrained once on glyph and texture crops disjoint from the
scenes, ``tools/pretrain_backbone.py``; made on first use). Splits (``--split``): ``val`` (1,000
scenes: search here) or ``test`` (1,000 scenes from another random stream, for the one final
confirmation).

Each run trains in its own process (one thread) and is evaluated every ``--val-interval``
iterations, so the table shows whether the baseline has converged. Runs are appended to a results
file committed with the repository (``benchmarks/accuracy_study.jsonl``) as they finish, each with
the machine it ran on, so no result is lost with a machine. A rerun skips what this machine has
done, so a study resumes across sessions; on another machine it runs them again (and says how
many), since a row of the table and its pairs are of one machine. A run that is stopped part way (a
session ends) resumes from its last evaluation when it is started again on the same machine: each
evaluation saves the run's checkpoint (``<work_dir>/<run>/study_last.pth``, removed once the result
is recorded), and the record lists the iterations it resumed at (``resumed_at``), since a resumed
run is not bit-identical to an unbroken one. A difference is always paired: each IPSD-side run
against the baseline of the same seed, start, split and machine, which is scheduled too when it is
missing.

    python tools/accuracy_study.py --models deeplabv3 --variants baseline --seeds 0 1 2 3 4 --split test
    python tools/accuracy_study.py --models retinanet --variants ipsd noswap noKD --tag _g1 \\
        --ipsd-options swap.box_grid=1 hook.gate=argmax          # one point of a search, on val
    python tools/accuracy_study.py --table [--markdown]          # print what is there
    python tools/accuracy_study.py --table --pool-machines      # a point's runs on two machines
    python tools/accuracy_study.py --models retinanet --dry-run  # the runs to do, as JSON

``--ipsd-options`` set ``swap.<option>`` (``IntraClassPatchSwap``) and ``hook.<option>``
(``IPSDHook``) on the IPSD-side variants; the ablations then override theirs. ``--quick`` is a
smoke run (tiny data, a few iterations); its numbers mean nothing.
"""
import argparse
import json
import logging
import os
import os.path as osp
import sys
from typing import Optional

import numpy as np
from mmengine.config import DictAction
from mmengine.logging import print_log

from ipsd_mm.comparison import (append_record, baselines_of, diff_cell, done_elsewhere, group_by,
                                load_records, machine, machine_id, new_table, paired_diffs,
                                run_dir_busy, run_logged, run_pool, spread_cell, t_interval,
                                train_resumable)
from ipsd_mm.comparison.training import CURVE, EXTRA, RESUMED_AT

TOOLS = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(TOOLS)
CONFIGS = osp.join(ROOT, 'configs', 'study')
# config, val metric, its name, scale to percent, iterations, backbone. The iterations are where the
# pretrained baseline's test mAP stops rising with the schedule's length (seed 0): RetinaNet 63.0 at
# 4,000, 64.7 at 6,000 (+0.2 over its last 1,000 on five seeds); Faster R-CNN 64.3 at 4,000, 65.7
# at 6,000 (+0.9 over its last 1,000), 66.9 at 8,000 (+0.0 over its last 1,000).
MODELS = {
    'deeplabv3': ('deeplabv3_r18-d8-w16_digit-scenes', 'mIoU', 'mIoU (%)', 1, 4000,
                  'resnet18v1c-w16'),
    'retinanet': ('retinanet_r18-w16_fpn_digit-scenes', 'coco/bbox_mAP', 'bbox mAP (%)', 100,
                  6000, 'resnet18-w16'),
    'faster-rcnn': ('faster-rcnn_r18-w16_fpn_digit-scenes', 'coco/bbox_mAP', 'bbox mAP (%)', 100,
                    8000, 'resnet18-w16'),
}
VARIANTS = ('baseline', 'ipsd', 'noswap', 'noKD', 'teacher', 'kd')
IPSD_SIDE = ('ipsd', 'noswap', 'noKD')  # the variants built from the IPSD config
# Teacher KD (the positive control, variant 'kd'): the student distilled through MMRazor from its
# teacher, the same model at --teacher-width base channels (variant 'teacher': trained once per
# data set, training set and start, seed 0, from a backbone pretrained as the student's). The
# recipes (ipsd_mm.kd.distill_model); each model's default is MMRazor's own recipe for it.
KD_DEFAULTS = {
    'deeplabv3': dict(recipe='cwd', loss_weight=5.0, tau=1.0),
    'retinanet': dict(recipe='pkd', loss_weight=10.0),
    'faster-rcnn': dict(recipe='pkd', loss_weight=6.0),
}
KD_OPTIONS = ('recipe', 'loss_weight', 'tau', 'levels')
TEACHER_SEED = 0
STARTS = ('scratch', 'pretrained')
SPLITS = ('val', 'test')
# The glyphs of the scenes: printed (Hershey fonts; a small CNN tells them apart at 99.6%+) or
# handwritten (scikit-learn's digits, train and val/test from disjoint pools: confusable).
DATA = ('printed', 'handwritten')
# What a step holds: 'images', the baseline's images (IPSD: half as many pairs); 'anchors', the
# baseline's images as anchors (IPSD: as many pairs, twice the images) beside a baseline at twice
# its batch, the footing of CS-KD and its line, so that what gains is the method, not the batch.
FOOTINGS = ('images', 'anchors')
SCENES = dict(size=(64, 64), num_digits=(1, 3), scale=(14, 32), seed=0)
RESULTS = osp.join(ROOT, 'benchmarks', 'accuracy_study.jsonl')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('--models', nargs='+', choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=['baseline', *IPSD_SIDE],
                        help='default: baseline ' + ' '.join(IPSD_SIDE) + '; teacher and kd '
                        'train the teacher first')
    parser.add_argument('--starts', nargs='+', choices=STARTS, default=['pretrained'],
                        help='scratch, or the pretrained backbone (default: pretrained)')
    parser.add_argument('--split', choices=SPLITS, default='val',
                        help='evaluate on val (search) or test (confirmation)')
    parser.add_argument('--data', choices=DATA, default='printed',
                        help='the glyphs of the scenes (default: printed)')
    parser.add_argument('--footing', choices=FOOTINGS, default='images',
                        help="a step's batch: the baseline's images (default), or its images as "
                             'anchors: IPSD pairs each with a partner, the baseline doubles')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument('--iters', type=int,
                        help="iterations per run; default: the model's (" + ', '.join(
                            f'{model} {spec[4]}' for model, spec in sorted(MODELS.items())) + ')')
    parser.add_argument('--val-interval', type=int, default=1000)
    parser.add_argument('--ipsd-options', nargs='+', action=DictAction, default={},
                        help='swap.<option>=value or hook.<option>=value for the IPSD variants')
    parser.add_argument('--kd-options', nargs='+', action=DictAction, default={},
                        help='the kd recipe: recipe=cwd|kl|pkd, loss_weight=, tau=, levels= '
                        '(default: MMRazor\'s recipe per model: ' + '; '.join(
                            f'{m} ' + ' '.join(f'{k}={v}' for k, v in d.items())
                            for m, d in sorted(KD_DEFAULTS.items())) + ')')
    parser.add_argument('--teacher-width', type=int, choices=(32, 64), default=32,
                        help="the teacher's base channels (the student's: 16); default 32")
    parser.add_argument('--tag', default='',
                        help='names the IPSD or kd variants of a search point')
    parser.add_argument('--jobs', type=int, default=2, help='runs in parallel, one thread each')
    parser.add_argument('--data-root', help='default: data/digit_scenes_study[_handwritten]'
                        '[_n<num-train>], one folder per kind of data and training set size')
    parser.add_argument('--num-train', type=int, default=600)
    parser.add_argument('--num-val', type=int, default=1000)
    parser.add_argument('--num-test', type=int, default=1000)
    parser.add_argument('--results', default=RESULTS, help='the results file (appended to)')
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'accuracy_study'))
    parser.add_argument('--pretrained-dir', default=osp.join(ROOT, 'work_dirs', 'pretrained'))
    parser.add_argument('--quick', action='store_true', help='tiny data and schedule: a smoke run')
    parser.add_argument('--table', action='store_true', help='only print the table')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the runs to do (one JSON spec a line), run nothing')
    parser.add_argument('--markdown', action='store_true', help='print the table as Markdown')
    parser.add_argument('--pool-machines', action='store_true',
                        help="one table row for a point's runs on every machine (each run still "
                        "paired with its own machine's baseline): a study that had to go on on "
                        'another machine')
    parser.add_argument('--run-one', help=argparse.SUPPRESS)  # a child process: one run's JSON
    args = parser.parse_args(argv)
    if args.quick:
        args.iters, args.val_interval = 4, 2
        args.num_train, args.num_val, args.num_test = 8, 4, 4
        args.seeds = args.seeds[:1]
    if args.data_root is None:
        args.data_root = osp.join(ROOT, 'data', 'digit_scenes_study' + (
            '' if args.data == 'printed' else '_' + args.data) + (
            '' if args.num_train == 600 else f'_n{args.num_train}'))
    for key in args.ipsd_options:
        target, _, name = key.partition('.')
        if target not in ('swap', 'hook') or not name:
            parser.error(f'--ipsd-options {key}: name swap.<option> (IntraClassPatchSwap) or '
                         'hook.<option> (IPSDHook)')
    if args.ipsd_options and not args.tag:
        parser.error('--ipsd-options need a --tag: it names the runs and their work dirs, which '
                     'would otherwise be those of the default IPSD runs')
    for key in args.kd_options:
        if key not in KD_OPTIONS:
            parser.error(f'--kd-options {key}: not a kd option; name one of {", ".join(KD_OPTIONS)}')
    if args.kd_options.get('recipe', 'cwd') not in ('cwd', 'kl', 'pkd'):
        parser.error(f"--kd-options recipe={args.kd_options['recipe']}: name cwd or kl "
                     '(segmentation: the decode head logits) or pkd (detection: the FPN)')
    if (args.kd_options or args.teacher_width != 32) and not args.tag and 'kd' in args.variants:
        parser.error('--kd-options and --teacher-width need a --tag: it names the kd runs and '
                     'their work dirs, which would otherwise be those of the default recipe')
    for model in args.models:
        iters = args.iters or MODELS[model][4]
        if iters % args.val_interval:
            parser.error(f'{model}: {iters} iterations are not a multiple of --val-interval '
                         f'{args.val_interval}: the last evaluation must be the final model')
    return args


CHECKPOINT = 'study_last.pth'  # a run's state at its last evaluation, in its work_dir


def relative(path: str) -> str:
    """A path as a record keeps it: relative to the repository when inside it, so that a
    record reads the same on every machine."""
    path = osp.abspath(path)
    return osp.relpath(path, ROOT) if path.startswith(osp.join(ROOT, '')) else path


def resolve(path: str) -> str:
    """A record's path on this machine (old records hold absolute ones)."""
    return osp.join(ROOT, path)


def run_key(spec: dict, here: dict) -> str:
    """What a checkpoint must have been written by to be resumed: this run, on this machine."""
    return json.dumps(key_of(dict(spec, machine=here)) + (spec['val_interval'], ))


#: the metrics a run keeps from its last evaluation beside its own: where the errors are
#: (ipsd_mm.comparison.error_metrics)
ERROR_METRICS = ('confusion/', 'agnostic/')


def build_config(spec: dict):
    """The config of one run: model, variant, start, split, seed and schedule applied."""
    from mmengine.config import Config

    from ipsd_mm.testing.digit_configs import evaluate_on, point_to, set_schedule
    config, metric = MODELS[spec['model']][:2]
    ipsd = spec['variant'] in IPSD_SIDE
    if spec['variant'] == 'teacher':
        config = teacher_config(spec['model'], spec['teacher_width'])
    cfg = Config.fromfile(osp.join(CONFIGS, config + ('_ipsd' if ipsd else '') + '.py'))
    point_to(cfg._cfg_dict, resolve(spec['data_root']))
    evaluate_on(cfg, spec['split'])
    add_error_metrics(cfg)
    if spec.get('footing', 'images') == 'anchors':  # IPSD: pairs of anchors; baseline: 2x
        cfg.train_dataloader.batch_size *= 2
    set_schedule(cfg, spec['iters'])
    cfg.train_cfg.val_interval = spec['val_interval']
    cfg.randomness = dict(seed=spec['seed'])
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    cfg.default_hooks.logger.interval = 50
    if spec['start'] == 'pretrained':
        cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                           checkpoint=resolve(spec['checkpoint']))
    if spec['variant'] == 'kd':
        distil(cfg, spec)
    if ipsd:
        swap = cfg.train_dataloader.dataset.swap
        hook = next(h for h in cfg.custom_hooks if h.type == 'IPSDHook')
        for key, value in spec['ipsd_options'].items():  # keys checked by parse_args
            target, _, name = key.partition('.')
            (swap if target == 'swap' else hook)[name] = value
        if spec['variant'] == 'noswap':
            swap.prob = 0.0
        if spec['variant'] == 'noKD':
            hook.loss_weight = 0.0
    cfg.work_dir = resolve(spec['work_dir'])
    return cfg, metric


def teacher_config(model: str, width: int) -> str:
    """The study config of ``model``'s teacher: the student's at ``width`` base channels."""
    return MODELS[model][0].replace('-w16', f'-w{width}')


def distil(cfg, spec: dict) -> None:
    """The student config ``cfg`` distilled from its trained teacher (``spec['teacher']``)
    through MMRazor with the run's recipe (``spec['kd_options']``)."""
    from mmengine.config import Config

    from ipsd_mm.kd import distill_config
    teacher = Config.fromfile(osp.join(CONFIGS, teacher_config(spec['model'],
                                                               spec['teacher_width']) + '.py'))
    teacher.model.backbone.init_cfg = None  # its trained weights are loaded whole
    distill_config(cfg, teacher.model.to_dict(), resolve(spec['teacher']), **spec['kd_options'])


def add_error_metrics(cfg) -> None:
    """Beside the study's metric, where the errors are (``ipsd_mm.comparison.error_metrics``): the pixel
    confusion shares of a segmentor, the class-agnostic mAP of a detector."""
    from mmengine.registry import METRICS

    from ipsd_mm.comparison import error_metrics
    for name in ('val_evaluator', 'test_evaluator'):
        metric = cfg[name]
        if metric.get('type') == 'CocoMetric':
            METRICS.register_module('ClassAgnosticCocoMetric', force=True,
                                    module=error_metrics.class_agnostic_coco_metric())
            extra = dict(type='ClassAgnosticCocoMetric', ann_file=metric.ann_file,
                         metric='bbox', format_only=False)
        else:
            METRICS.register_module('SegConfusionMetric', force=True,
                                    module=error_metrics.SegConfusionMetric)
            extra = dict(type='SegConfusionMetric', num_classes=cfg.model.decode_head.num_classes)
        cfg[name] = [metric, extra]


def run_one(spec: dict) -> dict:
    """Train one run in this process and return its record."""
    import torch

    import ipsd_mm  # noqa: F401  (registrations, compat)
    torch.set_num_threads(1)
    cfg, metric = build_config(spec)
    scale = MODELS[spec['model']][3]
    runner = train_resumable(cfg, metric, run_key(spec, machine()), CHECKPOINT, ERROR_METRICS)
    hub = runner.message_hub
    times = np.asarray(hub.get_scalar('train/time').data[0])
    curve = [(it, value * scale) for it, value in hub.get_info(CURVE)]
    if spec['variant'] == 'teacher':  # kept for the kd runs: the model's weights alone
        path = resolve(spec['teacher'])
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.save(dict(state_dict=runner.model.state_dict(),
                        meta=dict(final=curve[-1][1], run=name_of(spec))), path + '.part')
        os.replace(path + '.part', path)
    swap, hook = None, None
    if spec['variant'] in IPSD_SIDE:  # the options in effect, defaults included
        from dataclasses import asdict
        swap = asdict(runner.train_dataloader.dataset.swap.options)
        ipsd_hook = next(h for h in runner.hooks if type(h).__name__ == 'IPSDHook')
        hook = dict(loss_weight=ipsd_hook.loss_weight, temperature=ipsd_hook.loss.temperature,
                    gate=ipsd_hook.loss.gate, gate_threshold=ipsd_hook.loss.gate_threshold,
                    mode=ipsd_hook.mode, warmup_iters=ipsd_hook.warmup_iters,
                    use_aux=ipsd_hook.use_aux)
    extra = hub.get_info(EXTRA, {})
    errors = {k: v * (100 if k.startswith('agnostic/') else 1) for k, v in extra.items()}
    return dict(spec, curve=curve, final=curve[-1][1], machine=machine(), swap=swap, hook=hook,
                errors=errors,
                sec_per_iter=float(times[min(5, len(times) - 1):].mean()),
                resumed_at=hub.get_info(RESUMED_AT, []))


def name_of(spec: dict) -> str:
    """The run's work_dir and log name. The schedule is part of it, so runs of the same seed on
    two schedules (a convergence check, or a model whose default schedule changed) never write
    over each other's logs."""
    footing = '' if spec.get('footing', 'images') == 'images' else '_' + spec['footing']
    return (f"{data_prefix(spec)}{spec['model']}_{spec['start']}_{spec['split']}_"
            f"{spec['variant']}{spec['tag']}{footing}_{spec['iters']}it_s{spec['seed']}")


def data_prefix(spec: dict) -> str:
    """What names the scenes a run trains on: '' for the 600 printed ones."""
    data = spec.get('data', 'printed')
    return '' if data == 'printed' else data + (
        '' if spec['num_train'] == 600 else f"{spec['num_train']}") + '_'


def teacher_path(args, spec: dict) -> str:
    """Where the teacher of ``spec``'s model, data, training set, start and width is kept: one
    for both splits and every seed of the students (its own seed is TEACHER_SEED)."""
    return relative(osp.join(args.work_dir, 'teachers', f"{data_prefix(spec)}{spec['model']}"
                             f"-w{spec['teacher_width']}_{spec['start']}_{spec['iters']}it.pth"))


def launch(spec: dict, log_dir: str) -> Optional[dict]:
    """Train ``spec`` in a process of its own and return its record; None, saying so, where
    another process has started it since the plan was made (that process records it)."""
    if not skip_busy([spec]):  # the check at planning, again at the start
        return None
    name = name_of(spec)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    log_file = osp.join(log_dir, name + '.log')
    resuming = osp.isfile(osp.join(resolve(spec['work_dir']), CHECKPOINT))
    code = run_logged([sys.executable, __file__, '--run-one', json.dumps(spec)], log_file, env,
                      append=resuming, cwd=TOOLS)  # a resumed run's log goes on
    if code:
        raise RuntimeError(f'run {name} failed (exit {code}); its log: {log_file}')
    with open(osp.join(resolve(spec['work_dir']), 'result.json')) as f:
        return json.load(f)


def key_of(r: dict, with_machine: bool = True) -> tuple:
    key = (r['model'], r['variant'], r['start'], r['split'], r['tag'], r['seed'], r['iters'],
           r['num_train'], json.dumps(r['ipsd_options'], sort_keys=True),
           r.get('data', 'printed'), r.get('footing', 'images'),  # older records: the defaults
           json.dumps(r.get('kd_options', {}), sort_keys=True), r.get('teacher_width'))
    return key + ((machine_id(r['machine']), ) if with_machine else ())


def ensure_checkpoints(args, models, width: int = 16) -> dict:
    """The pretrained backbone of each model at ``width`` base channels (16: the student's),
    trained once (minutes) where missing (not in a ``--dry-run``: only its path)."""
    paths = {}
    for model in models:
        arch = MODELS[model][5].replace('-w16', f'-w{width}')
        path = osp.join(args.pretrained_dir, f"{arch}{'-quick' if args.quick else ''}.pth")
        if not osp.isfile(path) and not args.dry_run:
            log = osp.splitext(path)[0] + '.log'
            print_log(f'pretraining {arch} for the pretrained start (once; log: {log})',
                      logger='current')
            command = [sys.executable, osp.join(TOOLS, 'pretrain_backbone.py'), '--arch', arch,
                       '--out', path] + (['--num', '64', '--epochs', '1', '--batch', '32']
                                         if args.quick else [])
            os.makedirs(args.pretrained_dir, exist_ok=True)
            # A pretraining stopped part way goes on from its last epoch: keep its log.
            if run_logged(command, log, append=osp.isfile(path + '.partial')):
                raise RuntimeError(f'pretraining {arch} failed; its log: {log}')
        paths[model] = path
    return paths


def plan(args, done: list, here: dict) -> list:
    """The runs to do: those asked for that this machine has not done, plus the baselines their
    paired differences need on this machine."""
    checkpoints, teachers = {}, {}
    with_teacher = {'teacher', 'kd'} & set(args.variants)
    if 'pretrained' in args.starts:
        checkpoints = ensure_checkpoints(args, args.models)
        if with_teacher:
            teachers = ensure_checkpoints(args, args.models, args.teacher_width)
    done_keys = {key_of(r) for r in done}
    wanted = []
    variants = list(args.variants)
    if any(v != 'baseline' for v in variants) and 'baseline' not in variants:
        variants.insert(0, 'baseline')  # the pairs' baselines, on this machine
    if 'kd' in variants and 'teacher' not in variants:
        variants.insert(1, 'teacher')  # made on first use (skipped below when there)
    for model in args.models:
        for start in args.starts:
            specs = [run_spec(args, model, start, variant, seed,
                              (teachers if variant == 'teacher' else checkpoints).get(model))
                     for variant in variants
                     for seed in ([TEACHER_SEED] if variant == 'teacher' else args.seeds)]
            fresh = [key_of(dict(spec, machine=here)) not in done_keys for spec in specs]
            kd_to_do = any(new and s['variant'] == 'kd' for s, new in zip(specs, fresh))
            for spec, new in zip(specs, fresh):
                if spec['variant'] == 'teacher':  # for its row, or for a kd run still to do
                    missing = not osp.isfile(resolve(spec['teacher']))
                    new = (new and 'teacher' in args.variants) or (missing and kd_to_do)
                if new:
                    wanted.append(spec)
    return wanted


def run_spec(args, model: str, start: str, variant: str, seed: int, checkpoint) -> dict:
    """One run of the study, as its record keeps it."""
    ipsd, kd = variant in IPSD_SIDE, variant in ('teacher', 'kd')
    spec = dict(model=model, variant=variant, start=start, split=args.split, seed=seed,
                iters=args.iters or MODELS[model][4], val_interval=args.val_interval,
                tag=args.tag if variant in IPSD_SIDE + ('kd', ) else '',
                ipsd_options=dict(args.ipsd_options) if ipsd else {},
                num_train=args.num_train, data_root=relative(args.data_root), data=args.data,
                footing=args.footing, checkpoint=checkpoint and relative(checkpoint))
    if kd:
        spec.update(teacher_width=args.teacher_width)
        spec['teacher'] = teacher_path(args, spec)
    if variant == 'teacher':
        spec['tag'] = f'_w{args.teacher_width}'
    if variant == 'kd':
        spec['kd_options'] = dict(KD_DEFAULTS[model], **args.kd_options)
    spec['work_dir'] = relative(osp.join(args.work_dir, name_of(spec)))
    return spec


def main(args) -> None:
    from ipsd_mm.testing.digit_configs import ensure_data
    done = load_records(args.results)
    if not args.table:
        here = machine()
        specs = skip_busy(plan(args, done, here))
        print_log(f'{len(specs)} runs to do on {machine_id(here)}, {len(done)} results in '
                  f'{args.results}', logger='current')
        done_keys = {key_of(r) for r in done}
        again = [s for s in specs if key_of(dict(s, machine=here)) in done_keys]
        if again:  # teachers whose weights are gone: their rows stay, the weights are made
            print_log(f'{len(again)} teacher(s) done on this machine have no weights here ('
                      + ', '.join(s['teacher'] for s in again) + '): trained again for the '
                      'kd runs still to do; their rows stay as they are', logger='current')
        elsewhere = done_elsewhere([s for s in specs if s not in again], done,
                                   lambda r: key_of(r, with_machine=False))
        if elsewhere:
            print_log(elsewhere, logger='current', level=logging.WARNING)
        if args.dry_run:
            for spec in specs:
                print(json.dumps(spec))
            return
        log_dir = osp.join(args.work_dir, 'logs')
        os.makedirs(log_dir, exist_ok=True)
        os.makedirs(osp.dirname(osp.abspath(args.results)), exist_ok=True)
        ensure_data(args.data_root, num_train=args.num_train, num_val=args.num_val,
                    num_test=args.num_test, glyphs=args.data, **SCENES)
        run_specs(specs, args.jobs, log_dir, args.results, done)
    rows = [r for r in done if r['model'] in args.models and r.get('data', 'printed') ==
            args.data and (args.table or r['split'] == args.split)]
    print(table(rows, args.markdown, args.pool_machines))
    print(error_table(rows, args.markdown))


def skip_busy(specs: list) -> list:
    """``specs`` less the runs another process is training now (a second runner of the same
    plan or results file; that process records them), and the kd runs whose teacher is such a
    run; each one left out is named."""
    busy = {}
    for spec in specs:
        why = run_dir_busy(resolve(spec['work_dir']))
        if why:
            busy[spec['work_dir']] = why
    teachers = {s['teacher'] for s in specs if s['variant'] == 'teacher' and s['work_dir'] in busy}
    keep = []
    for spec in specs:
        if spec['work_dir'] in busy:
            print_log(f"not started here: {name_of(spec)}: {busy[spec['work_dir']]}",
                      logger='current', level=logging.WARNING)
        elif spec['variant'] == 'kd' and spec['teacher'] in teachers:
            print_log(f'not started here: {name_of(spec)}: its teacher is being trained by '
                      'another process; run the study again once it has ended',
                      logger='current', level=logging.WARNING)
        else:
            keep.append(spec)
    return keep


def run_specs(specs: list, jobs: int, log_dir: str, results: str, done: list) -> None:
    """Run ``specs``, ``jobs`` at a time (one thread each, their logs in ``log_dir``), appending
    each record to ``results`` (and ``done``) as it finishes, with one line each on the
    terminal. Teachers start first, each kd run as soon as its teacher is trained; the other
    runs fill the slots meanwhile. A run that another runner has started since the plan was made
    is left to it; a run that fails is raised once the others have ended and been recorded. A
    teacher remade for its weights adds no row; it is checked against the row it has (a warning
    where the two differ)."""
    order = sorted(specs, key=lambda s: {'teacher': 0, 'kd': 2}.get(s['variant'], 1))
    for result in run_pool(order, jobs, lambda spec: launch(spec, log_dir),
                           after=lambda s: s['teacher'] if s['variant'] == 'kd' else None,
                           provides=lambda s: s['teacher'] if s['variant'] == 'teacher' else None):
        recorded = [r for r in done if key_of(r) == key_of(result)]
        if not recorded:
            append_record(results, result)  # as each run finishes
            done.append(result)
        elif recorded[0]['final'] != result['final']:  # a teacher's weights remade
            print_log(f'{name_of(result)}: the remade teacher scores {result["final"]:.2f}, its '
                      f'row {recorded[0]["final"]:.2f}: the kd runs from now on distil from '
                      'other weights than those before (a changed backbone or library?)',
                      logger='current', level=logging.WARNING)
        os.remove(osp.join(resolve(result['work_dir']), CHECKPOINT))  # recorded
        print_log(f'done: {name_of(result)}: {result["final"]:.2f} '
                  f'({len(done)} results)', logger='current')


def best_points(results: list, data: str, split: str = 'val') -> list:
    """Per model, the IPSD-side point with the highest mean paired difference on ``data``
    (pretrained start, same images per step): (model, point, mean, CI or None, seeds)."""
    baselines = baselines_of(results, pair_key, final_of, is_baseline)
    points = group_by((r for r in results if r['variant'] in IPSD_SIDE
                       and r.get('data', 'printed') == data and r['split'] == split
                       and r['start'] == 'pretrained' and r.get('footing', 'images') == 'images'
                       and pair_key(r) in baselines),
                      lambda r: (r['model'], r['variant'] + r['tag'], r['iters'],
                                 machine_id(r['machine'])))
    best = {}
    for (model, point, _, _), runs in points.items():
        diffs = paired_diffs(runs, baselines, pair_key, final_of)
        mean, ci = t_interval(np.asarray(diffs))
        if model not in best or mean > best[model][2]:
            best[model] = (model, point, mean, ci, len(diffs))
    return [best[m] for m in sorted(best)]


def table(results: list, markdown: bool = False, pool_machines: bool = False) -> str:
    """One row per (model, start, split, variant and options, iterations, machine): the final
    metric per seed, mean ± std, the paired difference to the baseline (same seed, start, split,
    machine) with its 95% CI, the mean learning curve and s/iter. ``pool_machines``: one row
    for the runs of every machine, each still paired within its machine."""
    groups = group_by(results, lambda r: (
        r['model'], r.get('data', 'printed'), r['num_train'], r['start'], r['split'],
        r.get('footing', 'images'), r['variant'], r['tag'], options_of(r), r['iters'],
        '' if pool_machines else machine_id(r['machine'])))
    baselines = baselines_of(results, pair_key, final_of, is_baseline)
    t = new_table(['model', 'data', 'train', 'start', 'split', 'footing', 'variant', 'options',
                   'iters', 'seeds', 'final per seed', 'mean ± std', 'paired diff [95% CI]',
                   'curve (mean at iteration)', 's/iter', 'machine'], markdown)
    machines = {}
    for (model, data, num_train, start, split, footing, variant, tag, options, iters,
         _), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: (r['seed'], machine_id(r['machine'])))
        finals = np.array([r['final'] for r in runs])
        diff = '' if variant == 'baseline' else diff_cell(paired_diffs(runs, baselines,
                                                                        pair_key, final_of))
        iters_at = [it for it, _ in runs[0]['curve']]
        curve = np.mean([[v for _, v in r['curve']] for r in runs
                         if len(r['curve']) == len(iters_at)], axis=0)
        ids = sorted({machines.setdefault(machine_id(r['machine']), f'M{len(machines) + 1}')
                      for r in runs})
        t.add_row([model, data, num_train, start, split, footing, variant + tag,
                   options if options != '{}' else '',
                   iters, ' '.join(str(r['seed']) for r in runs),
                   ' '.join(f'{v:.2f}' for v in finals), spread_cell(finals), diff,
                   ' '.join(f'{v:.1f}@{it}' for it, v in zip(iters_at, curve)),
                   f"{np.mean([r['sec_per_iter'] for r in runs]):.3f}", ' '.join(ids)])
    legend = '\n'.join(f'{short}: {full}' for full, short in machines.items())
    return ('\nDigitScenes accuracy study (std: sample standard deviation over seeds; paired '
            'diff: variant - baseline of the same seed, data, start, split, footing and machine, '
            f'mean and 95% t-interval)\n{t}\n{legend}')


def options_of(r: dict) -> str:
    """A run's options as the table shows them: IPSD's, or the kd recipe and its teacher."""
    if r.get('kd_options'):
        return json.dumps(dict(r['kd_options'], teacher=f"w{r['teacher_width']}"), sort_keys=True)
    return json.dumps(r['ipsd_options'], sort_keys=True)


def final_of(r: dict) -> float:
    return r['final']


def is_baseline(r: dict) -> bool:
    return r['variant'] == 'baseline'


def pair_key(r: dict) -> tuple:
    """What a run and the baseline it is paired with share."""
    return (r['model'], r.get('data', 'printed'), r['num_train'], r['start'], r['split'],
            r.get('footing', 'images'), r['seed'], r['iters'], machine_id(r['machine']))


def error_table(results: list, markdown: bool = False) -> str:
    """Where the errors are (mean over seeds of the last evaluation, ``ipsd_mm.comparison.error_metrics``): for
    a segmentor the share of wrong pixels that are digit read as another digit, digit missed
    (read as background) and background read as a digit, and the class accuracy of the digit
    pixels found; for a detector mAP beside class-agnostic mAP."""
    groups = group_by((r for r in results if r.get('errors')), lambda r: (
        r['model'], r.get('data', 'printed'), r['num_train'], r['start'], r['split'],
        r.get('footing', 'images'), r['variant'] + r['tag'], r['iters']))
    t = new_table(['model', 'data', 'train', 'start', 'split', 'footing', 'variant', 'iters',
                   'seeds', 'metric', 'digit-digit % of errors', 'digit-bg %', 'bg-digit %',
                   'class acc. of found digits', 'class-agnostic mAP', 'gap (confusion)'],
                  markdown)

    def mean(runs, key):
        values = [r['errors'][key] for r in runs if key in r['errors']]
        return f'{np.mean(values):.1f}' if values else ''

    for group, runs in sorted(groups.items()):
        final = np.mean([r['final'] for r in runs])
        agnostic = [r['errors']['agnostic/bbox_mAP'] for r in runs
                    if 'agnostic/bbox_mAP' in r['errors']]
        gap = f'{np.mean(agnostic) - final:.1f}' if agnostic else ''
        t.add_row(list(group) + [len(runs), f'{final:.1f}',
                                 mean(runs, 'confusion/object_object_share'),
                                 mean(runs, 'confusion/object_background_share'),
                                 mean(runs, 'confusion/background_object_share'),
                                 mean(runs, 'confusion/found_object_class_acc'),
                                 mean(runs, 'agnostic/bbox_mAP'), gap])
    return f'\nWhere the errors are (mean over seeds, last evaluation)\n{t}'


if __name__ == '__main__':
    args = parse_args()
    if args.run_one:
        result = run_one(json.loads(args.run_one))
        with open(osp.join(resolve(result['work_dir']), 'result.json'), 'w') as f:
            json.dump(result, f)
    else:
        main(args)
