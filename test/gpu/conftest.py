"""GPU-only tests of the CUDA Swin engine (addon/cuda). Skipped where no CUDA device or no
built C API library is present; CI (no GPU) never runs them.

    cmake -S addon/cuda -B build/cuda && cmake --build build/cuda -j
    python -m pytest -q test/gpu            # from the repository root

Each test records its numbers; at the end the session writes report.json and report.md to
$SWIN_GPU_REPORT (default build/gpu-report)."""

from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'engines'))

torch = pytest.importorskip('torch')

RESULTS: list[dict] = []


def pytest_collection_modifyitems(config, items):
    reason = None
    if not torch.cuda.is_available():
        reason = 'no CUDA device'
    else:
        try:
            from swintools.cuda_engine import capi

            capi()
        except (OSError, FileNotFoundError) as e:
            reason = f'CUDA engine C API not built: {e}'
    if reason:
        for item in items:
            if 'cpu_ok' not in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_configure(config):
    config.addinivalue_line('markers', 'cpu_ok: runs without a GPU (engine-file semantics)')


@pytest.fixture(scope='session')
def record():
    def add(**kw):
        RESULTS.append(kw)

    return add


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    out = os.environ.get('SWIN_GPU_REPORT', os.path.join(ROOT, 'build', 'gpu-report'))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'report.json'), 'w') as f:
        json.dump(
            {
                'device': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu',
                'torch': torch.__version__,
                'results': RESULTS,
            },
            f,
            indent=1,
        )
    lines = []
    for kind in sorted({r['kind'] for r in RESULTS}):
        rows = [r for r in RESULTS if r['kind'] == kind]
        keys = [k for k in rows[0] if k != 'kind']
        lines += [f'### {kind}', '', '| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
        for r in rows:
            lines.append('| ' + ' | '.join(_fmt(r.get(k)) for k in keys) + ' |')
        lines.append('')
    with open(os.path.join(out, 'report.md'), 'w') as f:
        f.write('\n'.join(lines))


def _fmt(v):
    if isinstance(v, float):
        return f'{v:.3g}'
    return str(v)
