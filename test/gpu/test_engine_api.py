"""The engine's contract beyond numerics: error codes for bad files and batch sizes, host-memory
infer(), and `instances` execution contexts used from several threads at once."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import torch


@pytest.fixture(scope='module')
def engine_path(tmp_path_factory):
    from swintools.arch import build_model, get_arch
    from swintools.cuda_engine import write_engine

    d = tmp_path_factory.mktemp('eng')
    with open(
        os.path.join(os.path.dirname(__file__), '..', '..', 'engines', 'models', 'swin-fmnist', 'model.json')
    ) as f:
        mj = json.load(f)
    model = build_model(get_arch(mj['architecture']), seed=3)
    path = str(d / 'fm.swin')
    write_engine(
        path,
        model,
        'unfold',
        'fp16',
        mj['preprocess']['mean'],
        mj['preprocess']['std'],
        labels=mj['labels'],
        max_batch=16,
    )
    return path


def codes(fn):
    from swintools.cuda_engine import EngineError

    with pytest.raises(EngineError) as e:
        fn()
    return e.value.code


def test_bad_files(engine_path, tmp_path):
    from swintools.cuda_engine import Engine

    assert codes(lambda: Engine(str(tmp_path / 'missing.swin'))) == 'ERR_ENGINE_FILE'
    trunc = tmp_path / 'trunc.swin'
    trunc.write_bytes(open(engine_path, 'rb').read()[:5000])
    assert codes(lambda: Engine(str(trunc))) == 'ERR_ENGINE_FILE'
    garbage = tmp_path / 'garbage.swin'
    garbage.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": not json}')
    assert codes(lambda: Engine(str(garbage))) == 'ERR_ENGINE_FILE'
    from safetensors.torch import save_file

    other = tmp_path / 'other.safetensors'
    save_file({'w': torch.zeros(2)}, str(other), metadata={'format': 'pt'})
    assert codes(lambda: Engine(str(other))) == 'ERR_ENGINE_KIND'
    from safetensors import safe_open

    with safe_open(engine_path, 'pt') as f:
        meta = json.loads(f.metadata()['swin_engine'])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    meta['format_version'] = 99
    v99 = tmp_path / 'v99.swin'
    save_file(tensors, str(v99), metadata={'swin_engine': json.dumps(meta)})
    assert codes(lambda: Engine(str(v99))) == 'ERR_ENGINE_KIND'
    meta['format_version'] = 1
    tensors.pop('head.bias')
    nohead = tmp_path / 'nohead.swin'
    save_file(tensors, str(nohead), metadata={'swin_engine': json.dumps(meta)})
    assert codes(lambda: Engine(str(nohead))) == 'ERR_ENGINE_FILE'


def test_batch_range_and_host_infer(engine_path):
    from swintools.cuda_engine import Engine

    eng = Engine(engine_path)
    assert eng.max_batch == 16 and eng.num_classes == 10 and eng.precision == 'fp16'
    imgs = torch.randint(0, 256, (17, 256, 256, 3), dtype=torch.uint8, device='cuda')
    assert codes(lambda: eng.infer(imgs)) == 'ERR_BATCH_RANGE'
    dev = eng.infer(imgs[:5])
    host = eng.infer_host(imgs[:5].cpu().numpy())
    assert np.array_equal(dev.cpu().numpy(), host)
    eng.close()


def test_instances_threads(engine_path):
    from swintools.cuda_engine import Engine

    ref_eng = Engine(engine_path)
    imgs = [np.random.randint(0, 256, (n, 256, 256, 3), dtype=np.uint8) for n in (1, 3, 8, 16, 5, 2)]
    expect = [ref_eng.infer_host(x) for x in imgs]
    ref_eng.close()
    eng = Engine(engine_path, instances=3)
    errors, results = [], {}

    def worker(t):
        try:
            for rep in range(4):
                for i, x in enumerate(imgs):
                    results[(t, rep, i)] = eng.infer_host(x)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    eng.close()
    assert not errors, errors
    # Each context times cuBLASLt's algorithms itself and may keep a different one, so results
    # agree to fp16 rounding, not bit for bit; a race between contexts would be far off.
    assert len(results) == 5 * 4 * len(imgs)
    for (t, rep, i), out in results.items():
        err = np.abs(out - expect[i]).max() / np.abs(expect[i]).max()
        assert err < 1e-2, f'thread {t} rep {rep} input {i} differs: {err:.3g}'
