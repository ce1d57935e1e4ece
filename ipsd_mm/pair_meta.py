"""The contract between the data side (``data/``, ``transforms.py``) and the distillation side
(``distill/``): the names under which a pair travels on data samples. Defined once, here."""

#: results key the swap transform writes on both members: its record of the swap.
SWAP_RECORD = 'ipsd'

#: metainfo keys stamped on each packed data sample of a pair.
PAIR_ID = 'ipsd_pair_id'  # the same int on both members, unique within a batch
ROLE = 'ipsd_role'  # ANCHOR or PARTNER
INSTANCE_PAIRS = 'ipsd_instance_pairs'  # detection: [(i, j)] into each side's gt_instances
CLASSES = 'ipsd_classes'  # segmentation: classes held by both members after the swap

ANCHOR, PARTNER = 0, 1


def evaluation_refusal(who: str, loop: str) -> str:
    """Why a val or test loop may not read ``IntraClassPairDataset``, and the fix; ``who`` says
    which side found it (the pair dataset, or IPSDHook before the run)."""
    return (f'{who}: the {loop} loop reads IntraClassPairDataset, which swaps and pairs '
            f'images, so its metric would score swapped, randomly paired images: evaluate on '
            f'the plain dataset (set {loop}_dataloader.dataset to the dataset the pair wrapper '
            'wraps, without pair_collate)')
