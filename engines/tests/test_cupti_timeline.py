"""bench/cupti_timeline.py on a trace built here: two engine threads, each batch laid out as
ImageBatchRunner::run issues it (events, copy in, nvJPEG and resize kernels waited on, the
engine's CUDA graph, logits copied back, the final synchronise). The batches are found, the
partial one at the window's start is left out, images come from the logits copy, and the
stages add up to what was laid out."""

import importlib.util
import os
import sys

import pytest

REPO = os.path.join(os.path.dirname(__file__), '..', '..')
_spec = importlib.util.spec_from_file_location('cupti_timeline', os.path.join(REPO, 'bench', 'cupti_timeline.py'))
tl = importlib.util.module_from_spec(_spec)
sys.modules['cupti_timeline'] = tl
_spec.loader.exec_module(tl)

US = 1000  # ns
CLASSES = 1000


class Trace:
    def __init__(self):
        self.rows = []
        self.correlation = 0

    def call(self, thread, name, start, end):
        self.correlation += 1
        self.rows.append(('R', start, end, 0, self.correlation, thread, 0, 0, name))
        return self.correlation

    def gpu(self, kind, start, end, stream, correlation, nbytes=0, graph=0, name=''):
        self.rows.append((kind, start, end, stream, correlation, 0, nbytes, graph, name))

    def batch(self, thread, t, images, engine_kernels=40):
        """One batch from t; returns its end (the final synchronise's return)."""
        self.call(thread, 'cudaEventRecord_v3020', t, t + 2 * US)
        self.call(thread, 'cudaEventRecord_v3020', t + 3 * US, t + 4 * US)
        c = self.call(thread, 'cudaLaunchKernel_v7000', t + 10 * US, t + 12 * US)
        self.gpu('K', t + 900 * US, t + 1100 * US, 7, c, name='nvjpeg::gpu::colorConvertKernel')
        c = self.call(thread, 'cudaLaunchKernel_v7000', t + 13 * US, t + 15 * US)
        self.gpu('K', t + 1100 * US, t + 1200 * US, 7, c, name='swin::resizeVertical(unsigned char const*)')
        self.call(thread, 'cudaStreamSynchronize_v3020', t + 16 * US, t + 1300 * US)
        self.call(thread, 'cudaEventRecord_v3020', t + 1310 * US, t + 1311 * US)
        c = self.call(thread, 'cudaGraphLaunch_v10000', t + 1312 * US, t + 1330 * US)
        for k in range(engine_kernels):  # 20 us each, 5 us apart
            self.gpu(
                'K', t + 1340 * US + k * 25 * US, t + 1360 * US + k * 25 * US, 9, c, graph=3, name='layerNormKernel'
            )
        engine_end = t + 1340 * US + (engine_kernels - 1) * 25 * US + 20 * US
        self.call(thread, 'cudaEventRecord_v3020', t + 1331 * US, t + 1332 * US)
        c = self.call(thread, 'cudaMemcpyAsync_v3020', t + 1333 * US, t + 1335 * US)
        self.gpu('M', engine_end + 5 * US, engine_end + 15 * US, 7, c, nbytes=4 * CLASSES * images, name='DtoH')
        self.call(thread, 'cudaEventRecord_v3020', t + 1336 * US, t + 1337 * US)
        end = engine_end + 20 * US
        self.call(thread, 'cudaStreamSynchronize_v3020', t + 1338 * US, end)
        return end

    def write(self, path, window):
        with open(path, 'w') as f:
            f.write('kind\tstart_ns\tend_ns\tstream\tcorrelation\tthread\tbytes\tgraph\tname\n')
            for r in sorted(self.rows, key=lambda r: r[1]):
                f.write('\t'.join(map(str, r)) + '\n')
            f.write(f'# window_start_ns={window[0]} window_end_ns={window[1]} records={len(self.rows)} dropped=0\n')


@pytest.fixture
def trace(tmp_path):
    t = Trace()
    sizes = {11: [8, 28, 30, 26], 22: [9, 31, 27, 29]}
    start = {11: 1_000_000 * US, 22: 1_000_700 * US}
    for thread, imgs in sizes.items():
        at = start[thread]
        for n in imgs:
            at = t.batch(thread, at, n) + 100 * US  # 100 us waiting for the next batch
    path = tmp_path / 'trace-1.tsv'
    # The window opens inside thread 11's first batch; each thread's first batch in the trace
    # is left out (where it began is not known from the calls alone).
    t.write(path, (1_000_500 * US, 1_020_000 * US))
    return path, sizes


def test_batches_are_split_per_thread_and_partial_ones_left_out(trace):
    path, sizes = trace
    rows, meta = tl.load(path)
    assert meta['dropped'] == 0
    bs = tl.batches_of(rows, CLASSES)
    by_thread = {}
    for b in bs:
        by_thread.setdefault(b['thread'], []).append(b['images'])
    # The first batch of each thread only marks where the next one starts.
    assert by_thread == {th: imgs[1:] for th, imgs in sizes.items()}
    for b in bs:
        assert b['idle_before_ms'] == pytest.approx(0.1)
        assert b['host_until_engine_launch_ms'] == pytest.approx(1.312)
        assert b['engine_launch_call_ms'] == pytest.approx(0.018)
        assert b['engine_span_ms'] == pytest.approx((39 * 25 + 20) / 1000)
        assert b['gpu']['engine'] == {'n': 40, 'busy_ms': pytest.approx(40 * 0.020)}
        assert b['gpu']['nvjpeg']['busy_ms'] == pytest.approx(0.2)
        assert b['gpu']['resize']['busy_ms'] == pytest.approx(0.1)
        # nvJPEG and resize back to back, then the engine and the copy.
        assert b['gpu_busy_ms'] == pytest.approx(0.3 + 40 * 0.020 + 0.010)
        # First call to the final synchronise's return: engine launched at 1.340, 0.995 of kernels, 0.020 after.
        assert b['wall_ms'] == pytest.approx(1.340 + 0.995 + 0.020)
        assert b['final_sync_wait_ms'] == pytest.approx(b['wall_ms'] - 1.338)


def test_steps_merge_runs_and_keep_the_order(trace):
    path, _ = trace
    rows, _ = tl.load(path)
    one = tl.batches_of(rows, CLASSES)[0]
    what = [(s['where'], s['what'], s['n']) for s in one['steps']]
    assert what[:2] == [('host', 'cudaEventRecord', 2), ('host', 'cudaLaunchKernel', 2)]
    assert ('gpu', 'engine kernels', 40) in what
    assert what.index(('gpu', 'nvjpeg kernels', 1)) < what.index(('gpu', 'resize kernels', 1))
    assert what.index(('host', 'cudaGraphLaunch', 1)) < what.index(('gpu', 'engine kernels', 40))
    assert what[-1] == ('gpu', 'copy DtoH', 1)


def test_main_prints_the_tables(trace, capsys, monkeypatch, tmp_path):
    path, sizes = trace
    out_json = tmp_path / 'timeline.json'
    monkeypatch.setattr(sys, 'argv', ['cupti_timeline.py', str(path), '--json', str(out_json)])
    tl.main()
    text = capsys.readouterr().out
    whole = sum(n for imgs in sizes.values() for n in imgs[1:])
    assert f'6 whole batches on 2 engine thread(s), {whole} images' in text
    assert '| images | ' in text and '| at ms | span ms |' in text
    assert out_json.exists()


def test_a_trace_with_no_whole_batch_says_so(tmp_path):
    t = Trace()
    t.batch(5, 1_000_000 * US, 16)
    path = tmp_path / 'trace-2.tsv'
    t.write(path, (999_000 * US, 1_010_000 * US))
    sys.argv = ['cupti_timeline.py', str(path)]
    with pytest.raises(SystemExit, match='no whole batch'):
        tl.main()
