"""Shared fixtures: small on-disk datasets written by the tests themselves."""
import pytest


@pytest.fixture(scope='session')
def digit_scenes(tmp_path_factory):
    """A tiny DigitScenes (COCO json + images for mmdet, images + label PNGs for mmseg)."""
    from ipsd_mm.testing.digit_scenes import make_digit_scenes
    root = str(tmp_path_factory.mktemp('digit_scenes'))
    make_digit_scenes(root, num_train=12, num_val=4, size=(64, 64), num_digits=(2, 4),
                      scale=(16, 32), seed=0)
    return root


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Class index caches go to the test's own folder, never the user's."""
    monkeypatch.setenv('IPSD_MM_CACHE', str(tmp_path / 'ipsd_cache'))
