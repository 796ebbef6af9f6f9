"""The torch copy of sharp's resize and the self-test file formats of a model folder."""

import json
import os

import numpy as np
import pytest
import torch

from swintools.fmnist import CLASSES, linear_matrix, resize_float, to_service_input

REPO = os.path.join(os.path.dirname(__file__), '..', '..')
MODEL = os.path.join(REPO, 'engines', 'models', 'swin-fmnist')


def test_linear_matrix_rows_are_convex_and_edges_repeat():
    m = linear_matrix(28, 256)
    assert torch.allclose(m.sum(1), torch.ones(256))
    assert (m >= 0).all()
    assert m[0, 0] == 1.0  # dst 0 samples src -0.5 -> clamped to the first pixel
    assert m[-1, -1] > 0.8


def test_resize_constant_image_stays_constant():
    x = torch.full((2, 28, 28), 137, dtype=torch.uint8)
    for kernel in ('linear', 'nearest'):
        assert (resize_float(x, 256, kernel) == 137).all()


def test_service_input_layout():
    x = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    y = to_service_input(x, 256)
    assert y.shape == (3, 256, 256, 3) and y.dtype == torch.uint8
    assert torch.equal(y[..., 0], y[..., 2])


@pytest.mark.skipif(not os.path.exists(os.path.join(MODEL, 'model.json')), reason='no model folder')
def test_model_folder_selftest_files_match_model_json():
    with open(os.path.join(MODEL, 'model.json')) as f:
        cfg = json.load(f)
    a = cfg['architecture']
    st = cfg['selftest']
    raw = np.fromfile(os.path.join(MODEL, st['input']), dtype=np.uint8)
    assert raw.size == st['count'] * a['img_size'] * a['img_size'] * 3
    with open(os.path.join(MODEL, st['expected_logits'])) as f:
        logits = np.array(json.load(f), dtype=np.float64)
    assert logits.shape == (st['count'], a['num_classes'])
    assert np.isfinite(logits).all()
    assert cfg['labels'] == CLASSES
    for variant, files in cfg['artifacts'].items():
        assert os.path.exists(os.path.join(MODEL, files['onnxruntime'])), variant
