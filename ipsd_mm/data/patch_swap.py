"""What both ``IntraClassPatchSwap`` registrations share: the partner from the OpenMMLab
multi-image protocol (``results['mix_results']``), in-place access, options and randomness.
The library-specific transforms are in ``seg_transforms.py`` (mmseg) and ``det_transforms.py``
(mmdet)."""
from dataclasses import asdict, fields
from typing import Any, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from .rng import ProcessRNG


def take_partner(results: dict, keys: Sequence[str], optional: Sequence[str] = ()) -> dict:
    """The partner's results from ``mix_results``, checked to hold ``keys``, and to hold each
    of the ``optional`` keys exactly when the anchor does."""
    mix = results.get('mix_results')
    if not isinstance(mix, (list, tuple)) or len(mix) != 1 or not isinstance(mix[0], dict):
        raise KeyError(
            "IntraClassPatchSwap needs results['mix_results'] = [partner_results]: wrap the "
            "dataset in IntraClassPairDataset (or a MultiImageMixDataset), which supplies it; "
            f"got {type(mix).__name__ if mix is not None else 'no mix_results'}")
    partner = mix[0]
    for key in keys:
        if key not in results:
            raise KeyError(f"IntraClassPatchSwap needs results['{key}'] on the anchor: load it "
                           'in the dataset pipeline before the swap')
        if key not in partner:
            raise KeyError(f"the partner in mix_results has no '{key}' but the anchor has: "
                           'both members must come from the same loading pipeline')
    for key in optional:
        if (key in results) != (key in partner):
            has, lacks = ('anchor', 'partner') if key in results else ('partner', 'anchor')
            raise KeyError(f"the {has} holds '{key}' but the {lacks} does not: both members "
                           'must hold the same annotations (the same loading pipeline, and '
                           f"'{key}' for every image of the dataset)")
    img_a, img_b = results['img'], partner['img']
    for member, img, res in (('anchor', img_a, results), ('partner', img_b, partner)):
        if img.ndim < 2 or img.shape[0] == 0 or img.shape[1] == 0:
            raise ValueError(f"IntraClassPatchSwap: the {member}'s image "
                             f"{res.get('img_path', '(no img_path)')} is empty (shape "
                             f'{tuple(img.shape)}): check that file, or drop it from the '
                             'dataset (a crop or resize before the swap may have emptied it)')
    if img_a.shape[2:] != img_b.shape[2:] or img_a.dtype != img_b.dtype:
        raise ValueError(f"the anchor's and the partner's 'img' differ in channels or dtype "
                         f'({img_a.shape}, {img_a.dtype} vs {img_b.shape}, {img_b.dtype}): load '
                         'both with the same color_type')
    return partner


def writeable(results: dict, key: str) -> np.ndarray:
    """``results[key]`` as an array the swap may change in place."""
    if not results[key].flags.writeable:
        results[key] = results[key].copy()
    return results[key]


class PatchSwapBase(BaseTransform):
    """What mmseg's and mmdet's ``IntraClassPatchSwap`` share: options, randomness and partner
    sampling. The options are the swap's options dataclass (``options_type``), their only
    owner: its fields, defaults and checks; keywords the dataclass does not have are named in a
    clear error."""
    options_type: type

    def __init__(self, **options: Any) -> None:
        known = [f.name for f in fields(self.options_type)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f'IntraClassPatchSwap ({self.__class__.__name__}) has no option '
                            f'{", ".join(unknown)}; its options: {", ".join(known)}')
        self.options = self.options_type(**options)  # frozen and checked: the only settings
        self.rng = ProcessRNG()

    @property
    def exclude_classes(self) -> Tuple[int, ...]:
        """Classes that never pair, swap or distil (read by ``IntraClassPairDataset`` too)."""
        return self.options.exclude_classes

    def _random_partner(self, dataset) -> int:
        return int(self.rng().integers(len(dataset)))

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in asdict(self.options).items())
        return f'{self.__class__.__name__}({args})'
