"""bench/cupti-trace/find-cupti.sh finds cupti.h and libcupti in each layout it may meet on a GPU
host: the toolkit (lib64/ only), PyTorch's CUDA wheel (lib/ only), Triton's wheel (lib/cupti/).
Its first version listed lib64/ and lib/ in one `ls`, which fails when either is missing, so on
the H100 host (2026-12-06) it found none."""

import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'bench', 'cupti-trace', 'find-cupti.sh')


def layout(root, lib_dir, lib_name='libcupti.so.13'):
    os.makedirs(os.path.join(root, 'include'), exist_ok=True)
    open(os.path.join(root, 'include', 'cupti.h'), 'w').close()
    os.makedirs(os.path.join(root, lib_dir), exist_ok=True)
    open(os.path.join(root, lib_dir, lib_name), 'w').close()
    return root


def find(candidates, cupti_dir=None):
    env = dict(os.environ, CUPTI_CANDIDATES=' '.join(candidates))
    env.pop('CUPTI_DIR', None)
    if cupti_dir:
        env['CUPTI_DIR'] = cupti_dir
    return subprocess.run(['bash', SCRIPT, 'python3'], env=env, capture_output=True, text=True)


@pytest.mark.parametrize('lib_dir', ['lib64', 'lib', 'lib/cupti'])
def test_each_layout_is_found(tmp_path, lib_dir):
    root = layout(str(tmp_path / 'cupti'), lib_dir)
    r = find([str(tmp_path / 'missing'), root])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [os.path.join(root, 'include'), os.path.join(root, lib_dir, 'libcupti.so.13')]


def test_a_header_without_a_library_is_passed_over(tmp_path):
    lone = str(tmp_path / 'headers-only')
    os.makedirs(os.path.join(lone, 'include'))
    open(os.path.join(lone, 'include', 'cupti.h'), 'w').close()
    full = layout(str(tmp_path / 'full'), 'lib64')
    r = find([lone, full])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == os.path.join(full, 'include')


def test_cupti_dir_comes_first_and_none_found_says_where_it_looked(tmp_path):
    first = layout(str(tmp_path / 'chosen'), 'lib')
    other = layout(str(tmp_path / 'other'), 'lib64')
    assert find([other], cupti_dir=first).stdout.split()[0] == os.path.join(first, 'include')
    r = find([str(tmp_path / 'nothing')])
    assert r.returncode == 1
    assert 'nothing' in r.stderr and r.stdout == ''
