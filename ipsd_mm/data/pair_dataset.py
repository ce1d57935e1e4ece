"""What mmseg's and mmdet's ``IntraClassPairDataset`` share: each item is an anchor and a partner
that share a class, swapped and packed, ready for :func:`pair_collate`. The registered classes
are in ``seg_pair_dataset.py`` (mmseg) and ``det_pair_dataset.py`` (mmdet)."""
import copy
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import Compose
from mmengine.dataset import BaseDataset
from mmengine.dataset.base_dataset import force_full_init
from mmengine.registry import Registry

from ..pair_meta import ANCHOR, PARTNER, ROLE, SWAP_RECORD, evaluation_refusal
from .class_index import ClassIndex, resolve_cache_option
from .collate import PackedPair
from .rng import ProcessRNG


class IntraClassPairDatasetBase:
    """Pairs each image with another image of one of its classes.

    Item ``i`` is anchor ``i`` and a partner ``j != i``: a class is drawn uniformly among the
    anchor's classes (those in the swap's ``exclude_classes`` never count), then ``j`` uniformly
    among the other images that hold it (if no class of ``i`` has another image, ``j`` is random
    and the pair shares nothing). Both go through the inner dataset's own pipeline, then
    ``swap`` (``IntraClassPatchSwap``) sees both, then ``pipeline`` (ending with the packing
    transform) runs on each member. The item is the two packed samples, their data samples
    stamped with the pair metadata of :mod:`ipsd_mm.pair_meta` (``pair_collate`` numbers the
    pairs of a batch).

    ``batch_size`` in the dataloader counts pairs: a batch holds twice as many images.

    Args:
        dataset (dict | BaseDataset): the dataset to pair, with its own load/augment pipeline
            (ending before the packing transform).
        swap (dict): the ``IntraClassPatchSwap`` config; its options can be overridden like any
            other key, e.g. ``--cfg-options train_dataloader.dataset.swap.prob=0.5``.
        pipeline (list[dict]): what runs on each member after the swap, ending with the
            packing transform (``PackSegInputs`` / ``PackDetInputs``).
        class_index_cache (str | bool, optional): segmentation only: the file caching the
            class index; None or True: a file in the user cache folder (``$IPSD_MM_CACHE`` or
            ``~/.cache/ipsd_mm``); False: no cache.
        max_refetch (int): how often to draw another anchor or partner when a pipeline returns
            None, before giving up. Defaults to 100.
        lazy_init (bool): defer loading the inner dataset and the class index until
            ``full_init``, as MMEngine's wrappers do. Defaults to False.
    """
    _datasets: Registry
    _transforms: Registry
    _pack_name: str
    _record_key: str  # the swap record's entry that travels as metainfo
    _meta_key: str

    def __init__(self, dataset: Union[dict, BaseDataset], swap: Union[dict, None] = None,
                 pipeline: Sequence[dict] = (),
                 class_index_cache: Union[str, bool, None] = None, max_refetch: int = 100,
                 lazy_init: bool = False) -> None:
        name = type(self).__name__
        if isinstance(max_refetch, bool) or not isinstance(max_refetch, int) or max_refetch < 0:
            raise ValueError(f'{name}: max_refetch must be an int >= 0, got {max_refetch!r}')
        self.class_index_cache = resolve_cache_option(class_index_cache)
        self.swap, self.member_pipeline = self._build_pipeline(swap, pipeline)
        if isinstance(dataset, dict):  # loaded in full_init, where an empty one gets a clear error
            dataset = self._datasets.build(dict(dataset, lazy_init=True))
        self.dataset = dataset
        self.max_refetch = max_refetch
        self.rng = ProcessRNG()
        self._metainfo = self.dataset.metainfo
        self.class_index: ClassIndex = []
        self.images_of_class: Dict[int, np.ndarray] = {}
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    def _build_pipeline(self, swap, pipeline: Sequence[dict]):
        name = 'IntraClassPairDataset'
        swap_cls = self._transforms.get('IntraClassPatchSwap')
        pack_cls = self._transforms.get(self._pack_name)
        transforms = [self._transforms.build(t) if isinstance(t, dict) else t for t in pipeline]
        if any(isinstance(t, swap_cls) for t in transforms):
            raise ValueError(f"{name}: IntraClassPatchSwap belongs in 'swap', not in 'pipeline' "
                             "(so that its options can be overridden): set swap=dict(type="
                             "'IntraClassPatchSwap', ...) and pipeline=[dict(type="
                             f"'{self._pack_name}')]")
        if swap is None:
            raise ValueError(f"{name}: 'swap' is missing: set swap=dict(type="
                             "'IntraClassPatchSwap', ...)")
        swap = self._transforms.build(swap) if isinstance(swap, dict) else swap
        if not isinstance(swap, swap_cls):
            raise ValueError(f"{name}: 'swap' must be dict(type='IntraClassPatchSwap', ...), got "
                             f'{type(swap).__name__}')
        if not transforms or not isinstance(transforms[-1], pack_cls):
            raise ValueError(f"{name}: 'pipeline' must end with dict(type='{self._pack_name}'); "
                             'move the packing transform out of the inner dataset pipeline')
        return swap, Compose(transforms)

    @property
    def metainfo(self) -> dict:
        _refuse_evaluation_loop(sys._getframe(1))
        return copy.deepcopy(self._metainfo)

    @property
    def pipeline(self) -> Compose:
        """The pair pipeline: what runs on each member after the swap."""
        return self.member_pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Union[Compose, Sequence]) -> None:
        """A whole train pipeline set from outside, as mmdet's ``PipelineSwitchHook`` does
        (RTMDet, YOLOX: ``train_dataloader.dataset.pipeline = Compose(...)``): what comes before
        the packing transform replaces the inner dataset's pipeline (every dataset inside a
        ``ConcatDataset``/``RepeatDataset``), the packing transform the pair pipeline, as
        :func:`ipsd_mm.config_utils.pair_train_dataloader` splits a config's pipeline."""
        transforms = list(pipeline.transforms if isinstance(pipeline, Compose) else pipeline)
        transforms = [self._transforms.build(t) if isinstance(t, dict) else t for t in transforms]
        pack_cls = self._transforms.get(self._pack_name)
        if not transforms or not isinstance(transforms[-1], pack_cls):
            raise ValueError('IntraClassPairDataset: a pipeline set on it (e.g. by '
                             f"PipelineSwitchHook's switch_pipeline) must end with "
                             f'{self._pack_name}, got {[type(t).__name__ for t in transforms]}')
        if any(isinstance(t, type(self.swap)) for t in transforms):
            raise ValueError('IntraClassPairDataset: a pipeline set on it holds '
                             "IntraClassPatchSwap, which belongs in the pair dataset's 'swap'")
        for leaf in _leaf_datasets(self.dataset):
            leaf.pipeline = Compose(transforms[:-1])
        self.member_pipeline = Compose(transforms[-1:])

    def full_init(self) -> None:
        """Load the inner dataset and build the class index."""
        if self._fully_initialized:
            return
        name = type(self.dataset).__name__
        empty = ValueError(f'IntraClassPairDataset: the dataset {name} is empty; check its '
                           'data_root, data_prefix, ann_file and filter_cfg')
        try:
            self.dataset.full_init()
        except Exception as e:
            if getattr(self.dataset, 'data_list', None) == []:  # MMEngine fails to serialise it
                raise empty from e
            raise
        if len(self.dataset) == 0:
            raise empty
        classes = self.dataset.metainfo.get('classes')
        excluded = self.swap.exclude_classes
        if classes is not None and any(c >= len(classes) for c in excluded):
            raise ValueError(f'IntraClassPatchSwap: exclude_classes={list(excluded)} names ids '
                             f'beyond the {len(classes)} classes of {name} (ids 0..'
                             f'{len(classes) - 1}: {tuple(classes)})')
        raw_index = self._build_class_index()
        self.class_index = [np.setdiff1d(c, excluded) if excluded else c for c in raw_index]
        holders: Dict[int, List[int]] = {}
        for i, classes in enumerate(self.class_index):
            for c in classes:
                holders.setdefault(int(c), []).append(i)
        if not holders:
            if excluded and any(len(c) for c in raw_index):
                raise ValueError(f'IntraClassPatchSwap: exclude_classes={list(excluded)} leaves '
                                 f'no class of {name} to pair: every class its images hold is '
                                 'excluded; exclude only the classes that are not objects')
            raise ValueError(f'IntraClassPairDataset: no image of {name} holds any class, so '
                             'nothing can be paired; check the annotations and label settings')
        self.images_of_class = {c: np.asarray(v) for c, v in holders.items()}
        self.image_ids = self._image_ids()
        if len(np.unique(self.image_ids)) < 2:
            copies = (f' ({len(self.image_ids)} items, all copies of it through '
                      f'{_wrappers(self.dataset)})' if len(self.image_ids) > 1 else '')
            raise ValueError(f'IntraClassPairDataset: {name} holds one distinct image{copies}: '
                             'a pair needs two images (a copy of the same image teaches '
                             'nothing); give the dataset at least two images')
        self._copies = len(np.unique(self.image_ids)) < len(self.image_ids)
        self._pairable = {c: len(np.unique(self.image_ids[v])) > 1
                          for c, v in self.images_of_class.items()}
        self._fully_initialized = True

    def _image_ids(self) -> np.ndarray:
        """One id per item, the same for items that are one image: wrappers such as
        ``RepeatDataset``, ``ConcatDataset([ds, ds])`` or ``ClassBalancedDataset`` repeat
        items, and an image paired with its own copy teaches nothing. An image is its
        ``img_path`` (else its ``seg_map_path``); an item with neither is an image of its own."""
        ids: Dict[object, int] = {}
        out = np.empty(len(self.dataset), dtype=np.int64)
        for i in range(len(self.dataset)):
            info = self.dataset.get_data_info(i)
            key = info.get('img_path') or info.get('seg_map_path') or ('item', i)
            out[i] = ids.setdefault(key, len(ids))
        return out

    def _build_class_index(self) -> ClassIndex:
        raise NotImplementedError

    @force_full_init
    def __len__(self) -> int:
        return len(self.dataset)

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def partner_of(self, idx: int, rng: np.random.Generator) -> int:
        """A partner for ``idx``: another image sharing one of its classes, else a random
        other image; never ``idx`` itself nor a copy of its image (see :meth:`_image_ids`)."""
        classes = [c for c in self.class_index[idx] if self._pairable[int(c)]]
        if classes:
            holders = self.images_of_class[int(classes[rng.integers(len(classes))])]
            if self._copies:
                others = holders[self.image_ids[holders] != self.image_ids[idx]]
                return int(others[rng.integers(len(others))])
            j = holders[rng.integers(len(holders) - 1)]
            return int(j if j != idx else holders[-1])  # uniform over the others
        if self._copies:
            others = np.flatnonzero(self.image_ids != self.image_ids[idx])
            return int(others[rng.integers(len(others))])
        j = int(rng.integers(len(self) - 1))
        return j if j < idx else j + 1

    @force_full_init
    def __getitem__(self, idx: int) -> List[dict]:
        rng = self.rng()
        for _ in range(self.max_refetch + 1):
            pair = self._prepare_pair(idx, rng)
            if pair is not None:
                return pair
            idx = int(rng.integers(len(self)))
        raise RuntimeError(f'IntraClassPairDataset: no valid pair after {self.max_refetch} '
                           'refetches: the pipelines keep returning None; check them')

    def swapped_pair(self, idx: int, rng: np.random.Generator) -> Optional[Tuple[dict, dict]]:
        """Anchor ``idx`` and a partner through the inner pipeline and the swap, not yet packed
        (their ``ipsd`` record holds the swapped cells); None when a pipeline dropped one."""
        anchor = self._load('anchor', idx)
        partner = self._load('partner', self.partner_of(idx, rng))
        if anchor is None or partner is None:
            return None
        if 'data_samples' in anchor:
            raise ValueError('IntraClassPairDataset: the inner dataset already packs its samples'
                             f'; move {self._pack_name} from its pipeline to the pair pipeline')
        anchor['mix_results'] = [partner]
        anchor = self.swap(anchor)
        anchor.pop('mix_results')
        return anchor, partner

    def _load(self, member: str, idx: int) -> Optional[dict]:
        """Item ``idx`` of the inner dataset through its pipeline; a failure names the member,
        the index and the file (a corrupt or empty image file ends in an OpenCV assertion that
        names none of them)."""
        try:
            return self.dataset[idx]
        except Exception as e:
            info = self.dataset.get_data_info(idx)
            files = ', '.join(f'{k}={info[k]}' for k in ('img_path', 'seg_map_path')
                              if info.get(k)) or 'no file named in its data info'
            raise RuntimeError(f'IntraClassPairDataset: loading the {member} (index {idx}: '
                               f'{files}) failed: {type(e).__name__}: {e}. Check or remove '
                               'that file') from e

    def _prepare_pair(self, idx: int, rng: np.random.Generator) -> Optional[List[dict]]:
        pair = self.swapped_pair(idx, rng)
        if pair is None:
            return None
        anchor, partner = pair
        before = [self._kept_through_pipeline(m) for m in pair]  # the pipeline works in place
        packed = [self.member_pipeline(anchor), self.member_pipeline(partner)]
        if any(p is None for p in packed):
            return None
        for role, member, sample, kept in zip((ANCHOR, PARTNER), pair, packed, before):
            self._check_packed(role, kept, sample)
            sample['data_samples'].set_metainfo({
                ROLE: role, self._meta_key: list(member[SWAP_RECORD][self._record_key])})
        return PackedPair(packed)

    def _kept_through_pipeline(self, swapped: dict) -> object:
        """What the pair pipeline must leave as the swap left it (read before it runs)."""
        return None

    def _check_packed(self, role: int, kept: object, packed: dict) -> None:
        """The packed member still holds what :meth:`_kept_through_pipeline` read."""

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(dataset={type(self.dataset).__name__}, '
                f'len={len(self.dataset)}, swap={self.swap!r})')


def _refuse_evaluation_loop(caller) -> None:
    """MMEngine's ``ValLoop`` and ``TestLoop`` read their dataset's ``metainfo`` as they are
    built, to give it to the evaluator: a pair dataset read there would be scored as swapped,
    randomly paired images (each twice), with IPSDHook or without. ``caller`` is the frame
    that reads ``metainfo``."""
    from mmengine.runner import TestLoop, ValLoop
    loop = caller.f_locals.get('self')
    if isinstance(loop, (ValLoop, TestLoop)):
        raise ValueError(evaluation_refusal(
            'IntraClassPairDataset', 'val' if isinstance(loop, ValLoop) else 'test'))


def _wrappers(dataset) -> str:
    """The dataset wrappers around the leaves, outermost first (``RepeatDataset``, ...)."""
    names = []
    while hasattr(dataset, 'dataset') or hasattr(dataset, 'datasets'):
        names.append(type(dataset).__name__)
        dataset = getattr(dataset, 'dataset', None) or dataset.datasets[0]
    return ' > '.join(names) or 'the dataset itself'


def _leaf_datasets(dataset) -> list:
    """The datasets that run a pipeline, through MMEngine's wrappers (``datasets``/``dataset``)."""
    if hasattr(dataset, 'datasets'):
        return [leaf for d in dataset.datasets for leaf in _leaf_datasets(d)]
    if hasattr(dataset, 'dataset'):
        return _leaf_datasets(dataset.dataset)
    return [dataset]
