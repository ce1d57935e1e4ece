"""Where a model's errors are: the premise test of the accuracy study (issue 31).

IPSD distils class distributions, so it can only teach where a model confuses one class with
another. These metrics measure how much of the error is such confusion, beside the study's own
metric, on every evaluation of a run:

- ``SegConfusionMetric`` (segmentation): the pixel confusion matrix, split into the share of the
  wrong pixels that are object-object confusion (a digit read as another digit), object to
  background (missed) and background to object (hallucinated), and the class accuracy of the
  object pixels that were found (of the pixels of a digit predicted as some digit, the share
  predicted as the right one).
- ``ClassAgnosticCocoMetric`` (detection): COCO bbox mAP with every label, predicted and
  ground truth, set to one class. mAP against class-agnostic mAP: the gap is what class
  confusion costs.
"""
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric


class SegConfusionMetric(BaseMetric):
    """The pixel confusion matrix of a segmentor, reported as error shares (percent).

    Args:
        num_classes (int): classes of the label maps.
        background (int): the class that is not an object. Defaults to 0.
        ignore_index (int): label pixels that are not scored. Defaults to 255.
    """
    default_prefix = 'confusion'

    def __init__(self, num_classes: int, background: int = 0, ignore_index: int = 255,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes, self.background, self.ignore_index = num_classes, background, ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        n = self.num_classes
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze().cpu().numpy().astype(np.int64)
            gt = sample['gt_sem_seg']['data'].squeeze().cpu().numpy().astype(np.int64)
            valid = gt != self.ignore_index
            matrix = np.bincount(gt[valid] * n + pred[valid], minlength=n * n).reshape(n, n)
            self.results.append(matrix)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        return confusion_shares(np.sum(results, axis=0), self.background)


def confusion_shares(matrix: np.ndarray, background: int = 0) -> Dict[str, float]:
    """Error shares of a confusion matrix (rows: ground truth, columns: prediction), percent."""
    objects = np.array([c for c in range(len(matrix)) if c != background])
    wrong = matrix.sum() - np.trace(matrix)
    among = matrix[np.ix_(objects, objects)]
    obj_obj = among.sum() - np.trace(among)
    obj_bg = matrix[objects, background].sum()
    bg_obj = matrix[background, objects].sum()
    share = (lambda x: 100.0 * x / wrong) if wrong else (lambda x: 0.0)
    return dict(object_object_share=share(obj_obj), object_background_share=share(obj_bg),
                background_object_share=share(bg_obj),
                found_object_class_acc=100.0 * np.trace(among) / max(1, among.sum()))


def class_agnostic_coco_metric():
    """``ClassAgnosticCocoMetric``: mmdet's ``CocoMetric`` with all labels one class (built on
    first use, so that a segmentation study needs no mmdet)."""
    from mmdet.evaluation import CocoMetric

    class ClassAgnosticCocoMetric(CocoMetric):
        """COCO mAP with every ground-truth and predicted label set to the first class."""
        default_prefix = 'agnostic'

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            api = self._coco_api
            first = min(api.get_cat_ids())
            for ann in api.dataset['annotations']:
                ann['category_id'] = first
            api.createIndex()
            self._first_label = api.get_cat_ids().index(first)

        def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
            relabelled = []
            for sample in data_samples:  # copies: the other metrics see the samples too
                pred = dict(sample['pred_instances'])
                pred['labels'] = pred['labels'].new_full(pred['labels'].shape, self._first_label)
                relabelled.append(dict(sample, pred_instances=pred))
            super().process(data_batch, relabelled)

    return ClassAgnosticCocoMetric
