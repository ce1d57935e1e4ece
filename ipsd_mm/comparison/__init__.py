"""Paired comparisons of training variants over seeds: the engine behind ``tools/compare.py``
(any config) and ``tools/accuracy_study.py`` (the DigitScenes study).

What is here is written once for both:

- ``records``: the machine a number depends on, the results file (one JSON record per finished
  run, appended as it finishes, so that nothing is lost with a machine), which runs are done
  elsewhere, pairing a run with the baseline of the same seed and machine, the 95% t-interval
  of the paired differences and the table cells;
- ``training``: a run of any config through ``tools/train.py`` (one process, or
  ``torch.distributed.run`` on N), its validation curve read from what the Runner writes, the
  IPSD config derived from a baseline; a run that resumes from its last evaluation, and a pool
  that runs N at a time, each run once what it needs (a teacher) is there;
- ``report``: the table and the plot of the curves of a comparison;
- ``error_metrics``: where a model's errors are (class confusion against the rest), beside its
  own metric (imported where a config names them: it needs MMEngine's evaluator).
"""
from .records import (append_record, baselines_of, diff_cell, done_elsewhere, group_by,
                      load_records, machine, machine_id, new_table, paired_diffs, spread_cell,
                      t_interval)
from .report import DEFAULT_METRICS, compare_table, metric_scale, pick_metric, plot_curves
from .training import (RecordEvaluations, RunDirBusy, claim_run_dir, derive_ipsd, finished,
                       hold_run_dir, read_curve, record_of, run_dir_busy, run_key, run_logged,
                       run_name, run_pool, train_command, train_resumable)

__all__ = [
    'machine', 'machine_id', 'load_records', 'append_record', 'done_elsewhere', 'group_by',
    'baselines_of', 'paired_diffs', 't_interval', 'diff_cell', 'spread_cell', 'new_table',
    'DEFAULT_METRICS', 'pick_metric', 'compare_table', 'metric_scale', 'plot_curves',
    'run_name', 'run_key', 'claim_run_dir', 'train_command', 'read_curve', 'finished',
    'record_of', 'derive_ipsd', 'run_logged', 'RecordEvaluations', 'train_resumable', 'run_pool',
    'RunDirBusy', 'hold_run_dir', 'run_dir_busy'
]
