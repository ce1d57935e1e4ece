"""Compare training variants of your own config over seeds, paired: baseline, IPSD, teacher KD.

Each (variant, seed) trains through tools/train.py in its own process (or on N processes with
--nproc), in <work-dir>/<variant>_s<seed>, its log beside it. Each finished run is appended to
<work-dir>/results.jsonl with its validation curve (read from what the Runner writes), so a
second call runs nothing it has, and resumes an interrupted run from its last checkpoint. The
report: per variant the final metric per seed, mean ± std, and the paired difference to the
baseline of the same seed with its 95% t-interval; and a plot of the validation curves
(<work-dir>/curves_<metric>.png).

    # baseline and the IPSD config derived from it, 3 seeds
    python tools/compare.py baseline=CONFIG --derive-ipsd --seeds 0 1 2 --work-dir DIR
    # any variants as configs (e.g. configs/kd/ for teacher KD), on 8 GPUs each
    python tools/compare.py baseline=A.py ipsd=A_ipsd.py kd=A_kd.py --nproc 8 --work-dir DIR
    # a cluster: print one command per run for your scheduler, then collect the results
    python tools/compare.py baseline=A.py --derive-ipsd --work-dir DIR --print-commands
    python tools/compare.py baseline=A.py --derive-ipsd --work-dir DIR --collect

--cfg-options apply to every variant (e.g. a shorter schedule); --swap-options and
--hook-options set the derived IPSD variant's IntraClassPatchSwap and IPSDHook options.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

from mmengine.config import DictAction
from mmengine.logging import print_log

from ipsd_mm.comparison import (RunDirBusy, append_record, claim_run_dir, compare_table,
                                derive_ipsd, finished, hold_run_dir, load_records, machine,
                                pick_metric, plot_curves, record_of, run_dir_busy, run_key,
                                run_logged, run_name, train_command)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('variants', nargs='+', metavar='NAME=CONFIG',
                        help="the variants; the one named by --baseline (default 'baseline') "
                             'is what the others are paired with')
    parser.add_argument('--derive-ipsd', nargs='?', const='ipsd', metavar='NAME',
                        help='add variant NAME (default ipsd): the baseline config made IPSD, '
                             'as configs/*/*_ipsd.py are')
    parser.add_argument('--swap-options', nargs='+', action=DictAction, default={},
                        help='IntraClassPatchSwap options of the derived IPSD variant')
    parser.add_argument('--hook-options', nargs='+', action=DictAction, default={},
                        help='IPSDHook options of the derived IPSD variant')
    parser.add_argument('--baseline', default='baseline', help='the variant paired against')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', required=True, help='runs, results.jsonl, the plot')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override settings of every variant, key=value')
    parser.add_argument('--nproc', type=int, default=1,
                        help='processes per run (torch.distributed.run): GPUs, or CPU workers')
    parser.add_argument('--metric', help="the val metric to report (default: the config's, "
                        'e.g. mIoU or coco/bbox_mAP)')
    parser.add_argument('--print-commands', action='store_true',
                        help='print one training command per missing run and exit')
    parser.add_argument('--collect', action='store_true',
                        help='record the finished runs found in the work dir, run nothing')
    parser.add_argument('--markdown', action='store_true', help='the table as Markdown')
    args = parser.parse_args(argv)
    configs = {}
    for item in args.variants:
        name, sep, config = item.partition('=')
        if not sep or not name or not config:
            parser.error(f'{item!r}: give each variant as NAME=CONFIG (e.g. baseline=a.py)')
        if name in configs:
            parser.error(f'variant {name!r} is given twice')
        if not osp.isfile(config):
            parser.error(f'variant {name}: config {config} does not exist')
        configs[name] = osp.abspath(config)
    if args.baseline not in configs:
        parser.error(f'no variant is named {args.baseline!r}: name the baseline '
                     f'{args.baseline}=CONFIG or set --baseline to one of {sorted(configs)}')
    if args.derive_ipsd in configs:
        parser.error(f'--derive-ipsd {args.derive_ipsd}: a variant of that name is given; '
                     'name the derived one otherwise (--derive-ipsd NAME)')
    if (args.swap_options or args.hook_options) and not args.derive_ipsd:
        parser.error('--swap-options and --hook-options set the derived IPSD variant: add '
                     '--derive-ipsd (a given IPSD config takes --cfg-options or a child config)')
    if args.print_commands and args.collect:
        parser.error('--print-commands and --collect are two steps: run the printed commands, '
                     'then --collect')
    args.configs = configs
    return args


def planned_runs(args) -> list:
    """(variant, config, seed, work dir) of every run asked for."""
    configs = dict(args.configs)
    if args.derive_ipsd:
        out = osp.join(args.work_dir, 'configs', f'{args.derive_ipsd}.py')
        configs[args.derive_ipsd] = derive_ipsd(configs[args.baseline], out, args.swap_options,
                                                args.hook_options)
    return [(variant, config, seed, osp.join(args.work_dir, run_name(variant, seed)))
            for variant, config in configs.items() for seed in args.seeds]


def main(args) -> None:
    os.makedirs(args.work_dir, exist_ok=True)
    results = osp.join(args.work_dir, 'results.jsonl')
    records = load_records(results)
    done = {run_key(r) for r in records}
    runs = [run for run in planned_runs(args)
            if run_key(dict(variant=run[0], config=run[1], seed=run[2],
                            cfg_options=args.cfg_options)) not in done]
    where = machine(threads=None)
    for variant, config, seed, work_dir in runs:  # before anything runs: each dir is its run's
        busy = run_dir_busy(work_dir)
        if busy:
            raise SystemExit(f'compare: {run_name(variant, seed)}: {busy}')
        claim_run_dir(work_dir, config, seed, args.cfg_options)
    if args.print_commands:
        for variant, config, seed, work_dir in runs:
            command = train_command(config, work_dir, seed, args.cfg_options, args.nproc,
                                    resume=osp.isfile(osp.join(work_dir, 'last_checkpoint')))
            print(' '.join(_quote(c) for c in command))
        return
    if not args.collect:
        print_log(f'compare: {len(runs)} runs to do, {len(records)} in {results}',
                  logger='current')
    for k, (variant, config, seed, work_dir) in enumerate(runs):
        if args.collect:
            if not finished(work_dir, config, args.cfg_options):
                print_log(f'compare: {run_name(variant, seed)} is not finished in {work_dir}; '
                          'not collected', logger='current')
                continue
            where_run = dict(cpu='collected from the work dir', torch='', threads=None)
        else:
            resume = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
            log = osp.join(args.work_dir, 'logs', run_name(variant, seed) + '.log')
            print_log(f'compare: [{k + 1}/{len(runs)}] {run_name(variant, seed)}'
                      f"{' (resumed)' if resume else ''}: log {log}", logger='current')
            command = train_command(config, work_dir, seed, args.cfg_options, args.nproc,
                                    resume=resume, port=29500 + os.getpid() % 1000)
            try:
                with hold_run_dir(work_dir):
                    failed = run_logged(command, log)
            except RunDirBusy as busy:  # started since the check above
                raise SystemExit(f'compare: {run_name(variant, seed)}: {busy}')
            if failed:
                raise SystemExit(f'compare: {run_name(variant, seed)} failed; its log: {log}')
            where_run = where
        record = record_of(variant, config, seed, args.cfg_options, work_dir, where_run,
                           args.nproc)
        append_record(results, record)
        records.append(record)
    if not records:
        print('compare: no finished run yet')
        return
    metric = pick_metric(records, args.metric)
    print(f'\n{metric} on val (paired diff: variant - {args.baseline} of the same seed and '
          'machine, mean and 95% t-interval)')
    print(compare_table(records, metric, args.baseline, args.markdown))
    plot = plot_curves(records, metric,
                       osp.join(args.work_dir, f"curves_{metric.replace('/', '_')}.png"))
    print(f'curves: {plot}')


def _quote(text: str) -> str:
    import shlex
    return shlex.quote(text)


if __name__ == '__main__':
    # setuptools' notice about mmengine's use of pkg_resources: not the user's to act on
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    main(parse_args(sys.argv[1:]))
