"""The baseline a user would otherwise write: a minimal aiohttp server with the same
/classify contract as swin-serve (raw image body -> top-k JSON), running the same
model with PyTorch eager or torch.compile.

    # CPU, the embedded model (weights from its model repository)
    python bench/python_baseline.py --model-dir engines/models/swin-fmnist --port 8090
    # GPU, Swin-T (random weights unless --checkpoint), fp16, naive batching
    python bench/python_baseline.py --arch swin_tiny --device cuda --half --max-batch 32 --port 8090
    # GPU, the strongest plain-Python server: nvJPEG batches, GPU resize, torch.compile fp16
    python bench/python_baseline.py --arch swin_tiny --device cuda --gpu-decode --half --compile --max-batch 64

Two decode paths:
- PIL (default): PIL decodes, resizes and crops in the default thread pool (the event
  loop keeps accepting); the uint8 [crop, crop, 3] arrays of a batch go to the device.
- --gpu-decode: the handler only reads the JPEG header (PIL, lazily: format, mode,
  EXIF orientation). A batch of JPEGs is decoded in one torchvision.io.decode_jpeg(list,
  device=...) call (nvJPEG on CUDA), rotated by EXIF, resized (shorter side, antialiased
  torch interpolate, one call per distinct image size) and centre-cropped on the device.
  Anything else (PNG, CMYK JPEG, an image nvJPEG refuses) is decoded by PIL instead.
Both end in uint8 NHWC on the device, normalised inside the graph (swintools' UInt8NHWC,
the graph the engines run); softmax and top-k run on the device and only the top-k
come back to the host.

Batching: requests wait in a queue; one task takes what is there (up to --max-batch,
waiting at most --batch-wait-ms for more) and runs it as one batch, one batch at a time.
--max-batch 1 (default) runs every request alone.

Threads: one inference thread owns the model. torch.compile traces, compiles and warms
every batch shape there at start-up (CUDA graphs and dynamo state are per thread), and
every batch runs there afterwards. With --compile, batches are padded to power-of-two
buckets (1, 2, 4, ... --max-batch), each warmed before the port opens, so /health/ready
answers only once nothing is left to compile. After warm-up every forward runs under the
compiler stance fail_on_recompile, so a shape that slipped through fails its requests
(HTTP 500, logged with dynamo's reason) instead of compiling for a minute on the request
path while every other request waits: what the torch.compile baseline did on the H100,
where a [1, ...] view of a numpy image (stride 0 on the batch axis) failed the stride
guard of the graph warmed with a fresh array, and no request came back in 33 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from aiohttp import web
from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'engines'))
from swintools.arch import PREPROCESS, build_model, get_arch
from swintools.wrapper import UInt8NHWC

log = logging.getLogger('baseline')

PIL_KERNEL = {
    'nearest': Image.NEAREST,
    'linear': Image.BILINEAR,
    'cubic': Image.BICUBIC,
    'mitchell': Image.BICUBIC,
    'lanczos2': Image.LANCZOS,
    'lanczos3': Image.LANCZOS,
}
# torch has no Lanczos; bicubic with antialias is the nearest it has.
TORCH_KERNEL = {
    'nearest': 'nearest',
    'linear': 'bilinear',
    'cubic': 'bicubic',
    'mitchell': 'bicubic',
    'lanczos2': 'bicubic',
    'lanczos3': 'bicubic',
}
# JPEG colour modes (PIL's names) nvJPEG decodes to RGB; CMYK/YCCK go to PIL.
NVJPEG_MODES = {'L', 'RGB'}
EXIF_ORIENTATION = 0x0112


def load_model(args) -> tuple[torch.nn.Module, dict, dict, list[str], str]:
    """(model, arch, preprocess, labels, name) from --model-dir or --arch."""
    if args.model_dir:
        with open(os.path.join(args.model_dir, 'model.json')) as f:
            cfg = json.load(f)
        arch, pre, labels, name = cfg['architecture'], cfg['preprocess'], cfg['labels'], cfg['name']
        model = build_model(arch, seed=None)
        weights = args.checkpoint or next(
            (os.path.join(args.model_dir, n) for n in sorted(os.listdir(args.model_dir)) if n.endswith('.safetensors')),
            None,
        )
        if weights is None:
            raise SystemExit(f'{args.model_dir} has no .safetensors weights; pass --checkpoint')
        from swintools.checkpoint import load_checkpoint

        load_checkpoint(model, weights)
    else:
        arch = get_arch(args.arch)
        pre = PREPROCESS[args.arch]
        model = build_model(arch, seed=0)
        if args.checkpoint:
            from swintools.checkpoint import load_checkpoint

            load_checkpoint(model, args.checkpoint)
        name = args.arch
        if arch['num_classes'] == 1000:
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            labels = [info.index_to_description(i) for i in range(1000)]
        else:
            labels = [f'class_{i}' for i in range(arch['num_classes'])]
    return model, arch, pre, labels, name


def resized_size(w: int, h: int, pre: dict) -> tuple[int, int]:
    """(width, height) an image is resized to before the centre crop."""
    crop = pre['crop']
    if pre['mode'] == 'squash':
        return crop, crop
    s = pre['resize'] / min(w, h)
    return max(crop, round(w * s)), max(crop, round(h * s))


def decode(data: bytes, pre: dict) -> np.ndarray:
    """Encoded image -> uint8 [crop, crop, 3] the way the model's preprocessing says, with PIL."""
    img = Image.open(io.BytesIO(data))
    img = ImageOps.exif_transpose(img).convert('RGB')
    crop = pre['crop']
    nw, nh = resized_size(*img.size, pre)
    img = img.resize((nw, nh), PIL_KERNEL[pre['kernel']])
    left, top = (nw - crop) // 2, (nh - crop) // 2
    img = img.crop((left, top, left + crop, top + crop))
    return np.array(img, dtype=np.uint8)


def probe_jpeg(data: bytes) -> int | None:
    """EXIF orientation (1-8) of a JPEG nvJPEG can decode to RGB, else None.

    PIL's open reads the markers only (tens of microseconds), so this runs on the event loop."""
    if not data.startswith(b'\xff\xd8\xff'):
        return None
    try:
        img = Image.open(io.BytesIO(data))
        if img.format != 'JPEG' or img.mode not in NVJPEG_MODES:
            return None
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # PIL decodes it (or refuses it) on the fallback path
        return None
    return orientation if orientation in range(1, 9) else 1


def orient(img: torch.Tensor, orientation: int) -> torch.Tensor:
    """[C, H, W] as displayed under EXIF `orientation` (what PIL's exif_transpose does)."""
    if orientation in (5, 6, 7, 8):
        img = img.transpose(-1, -2)
    flips = {2: (-1,), 3: (-1, -2), 4: (-2,), 6: (-1,), 7: (-1, -2), 8: (-2,)}.get(orientation)
    return img.flip(flips) if flips else img


def resize_crop(images: list[torch.Tensor], pre: dict) -> torch.Tensor:
    """uint8 [3, H, W] images of any sizes -> uint8 [n, crop, crop, 3] on their device.

    One antialiased interpolate per distinct (H, W) (a batch of photographs has few), in
    float, rounded back to uint8 as PIL and sharp produce them."""
    crop = pre['crop']
    mode = TORCH_KERNEL[pre['kernel']]
    kw = {} if mode == 'nearest' else {'antialias': True, 'align_corners': False}
    out = torch.empty((len(images), crop, crop, 3), dtype=torch.uint8, device=images[0].device)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, img in enumerate(images):
        groups[(img.shape[1], img.shape[2])].append(i)
    for (h, w), idx in groups.items():
        nw, nh = resized_size(w, h, pre)
        x = torch.stack([images[i] for i in idx])
        if (nh, nw) != (h, w):
            x = F.interpolate(x.float(), size=(nh, nw), mode=mode, **kw).round_().clamp_(0, 255).to(torch.uint8)
        top, left = (nh - crop) // 2, (nw - crop) // 2
        out[idx] = x[:, :, top : top + crop, left : left + crop].permute(0, 2, 3, 1)
    return out


def buckets(max_batch: int) -> list[int]:
    """1, 2, 4, ... below max_batch, then max_batch itself."""
    return sorted({1 << k for k in range(16) if 1 << k < max_batch} | {max_batch})


class DecodeError(Exception):
    """An image neither nvJPEG nor PIL could read: the request's fault (HTTP 400)."""


@dataclass
class Job:
    """One request as the inference thread sees it: pixels PIL already made, or a JPEG
    (body, EXIF orientation) for the GPU decoder."""

    body: bytes
    top_k: int
    pixels: np.ndarray | None = None  # uint8 [crop, crop, 3]
    orientation: int = 1


@dataclass
class Result:
    scores: np.ndarray  # float32 [top_k], descending
    indices: np.ndarray  # int64 [top_k]
    run_ms: float  # the whole batch on the inference thread


async def collect(queue: asyncio.Queue, max_batch: int, wait_s: float) -> list:
    """Wait for one item, then take what is queued or arrives within wait_s of it, up to max_batch."""
    loop = asyncio.get_running_loop()
    items = [await queue.get()]
    deadline = loop.time() + wait_s
    while len(items) < max_batch:
        if not queue.empty():
            items.append(queue.get_nowait())
            continue
        timeout = deadline - loop.time()
        if timeout <= 0:
            break
        try:
            items.append(await asyncio.wait_for(queue.get(), timeout))
        except TimeoutError:
            break
    return items


class Runner:
    """Owns the model and the one thread that runs it: compile, warm-up and every batch."""

    def __init__(self, args):
        t_start = time.perf_counter()
        self.device = torch.device(args.device)
        model, self.arch, self.pre, self.labels, self.name = load_model(args)
        self.half = args.half
        self.compiled = args.compile
        self.gpu_decode = args.gpu_decode
        self.max_batch = args.max_batch
        self.buckets = buckets(args.max_batch) if args.compile else []
        self.batch_sizes: Counter[int] = Counter()  # requests per batch -> batches run
        self.warming = True
        wrapped = UInt8NHWC(model, self.pre['mean'], self.pre['std']).to(self.device).eval()
        if args.compile:
            # mode applies to inductor only; other backends (e.g. 'eager' in the tests) take none
            kw = {'mode': args.compile_mode} if args.compile_backend == 'inductor' else {}
            self.model = torch.compile(wrapped, backend=args.compile_backend, **kw)
            torch._logging.set_logs(recompiles=True)  # why a shape compiled again goes to the log
        else:
            self.model = wrapped
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix='inference')
        self.thread_id = self.thread.submit(threading.get_ident).result()
        log.info(
            '%s on %s, %s, %s, %s decode, max batch %d; model loaded in %.1f s',
            self.name,
            self.device,
            f'torch.compile ({args.compile_backend}, {args.compile_mode})' if args.compile else 'eager',
            'fp16 autocast' if self.half else 'fp32',
            'GPU (torchvision)' if self.gpu_decode else 'PIL',
            self.max_batch,
            time.perf_counter() - t_start,
        )
        self.thread.submit(self._warm_up).result()  # raises here, and the process exits, if it fails
        self.warming = False
        log.info('ready after %.1f s', time.perf_counter() - t_start)

    def _warm_up(self):
        """Every batch shape requests will use, three times, on this thread: the first call
        compiles; CUDA graphs (mode=reduce-overhead) record on a later one."""
        if self.gpu_decode:  # a real JPEG, so nvJPEG and the resize kernels warm up too
            buf = io.BytesIO()
            rng = np.random.default_rng(0)
            Image.fromarray(rng.integers(0, 256, (375, 500, 3), np.uint8)).save(buf, 'JPEG', quality=90)
            job = Job(buf.getvalue(), top_k=5)
        else:
            crop = self.pre['crop']
            job = Job(b'', top_k=5, pixels=np.zeros((crop, crop, 3), np.uint8))
        for b in self.buckets or sorted({1, self.max_batch}):
            what = f'compile + warm-up, batch {b}' if self.compiled else f'warm-up, batch {b}'
            log.info('%s ...', what)
            t0 = time.perf_counter()
            for _ in range(3):
                self._run([job] * b)
            log.info('%s: %.1f s', what, time.perf_counter() - t0)
        self.batch_sizes.clear()

    def _images(self, jobs: list[Job]) -> tuple[list[int], torch.Tensor | None, dict[int, Exception]]:
        """The jobs' images as uint8 [m, crop, crop, 3] on the device: (which jobs, images, failures)."""
        images: dict[int, torch.Tensor] = {}  # job -> [crop, crop, 3] on the device
        failed: dict[int, Exception] = {}
        jpegs = [i for i, j in enumerate(jobs) if j.pixels is None]
        if jpegs:
            from torchvision.io import ImageReadMode, decode_jpeg

            data = [torch.frombuffer(bytearray(jobs[i].body), dtype=torch.uint8) for i in jpegs]
            try:
                decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError:  # one bad JPEG fails the batched call: decode one by one to find it
                decoded = []
                for d in data:
                    try:
                        decoded.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device))
                    except RuntimeError:
                        decoded.append(None)
            ok = [(i, orient(img, jobs[i].orientation)) for i, img in zip(jpegs, decoded) if img is not None]
            if ok:
                for (i, _), img in zip(ok, resize_crop([img for _, img in ok], self.pre)):
                    images[i] = img
            for i, img in zip(jpegs, decoded):
                if img is None:  # what nvJPEG refused, PIL may still read (or say why not)
                    try:
                        jobs[i].pixels = decode(jobs[i].body, self.pre)
                    except Exception as err:
                        failed[i] = DecodeError(str(err))
        host = [i for i, j in enumerate(jobs) if j.pixels is not None and i not in images]
        if host:
            uploaded = torch.from_numpy(np.stack([jobs[i].pixels for i in host])).to(self.device)
            images.update(zip(host, uploaded))
        order = sorted(images)
        return order, (torch.stack([images[i] for i in order]) if order else None), failed

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [n, crop, crop, 3] on the device -> probabilities [n, classes] (float32)."""
        n = x.shape[0]
        b = next(b for b in self.buckets if b >= n) if self.compiled else n
        # A fresh buffer, so every call of a shape has the same strides: a [1, ...] view of
        # a numpy image (pixels[None]) has stride 0 on the batch axis, which is still
        # "contiguous" to torch but fails dynamo's stride guard: a full recompile on the
        # first request, the cause of the torch.compile baseline's silent stall.
        buf = torch.empty((b, *x.shape[1:]), dtype=torch.uint8, device=self.device)
        buf[:n] = x
        buf[n:] = 0
        # After warm-up a compile means a shape was missed: fail the batch (with dynamo's
        # reason) rather than compile on the request path while every request waits.
        stance = (
            torch.compiler.set_stance('fail_on_recompile')
            if self.compiled and not self.warming
            else contextlib.nullcontext()
        )
        with stance, torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            logits = self.model(buf)
        return torch.softmax(logits[:n].float(), dim=-1)

    def _run(self, jobs: list[Job]) -> list[Result | Exception]:
        """One batch, on the inference thread: decode (GPU path), forward, top-k."""
        assert threading.get_ident() == self.thread_id, 'the model runs on its own thread only'
        t0 = time.perf_counter()
        self.batch_sizes[len(jobs)] += 1
        with torch.inference_mode():
            order, x, failed = self._images(jobs)
            out: list[Result | Exception] = [failed.get(i, RuntimeError('no result')) for i in range(len(jobs))]
            if x is not None:
                k = min(max(jobs[i].top_k for i in order), len(self.labels))
                scores, indices = self._forward(x).topk(k, dim=-1)
                scores, indices = scores.cpu().numpy(), indices.cpu().numpy()
                run_ms = (time.perf_counter() - t0) * 1e3
                for row, i in enumerate(order):
                    kk = jobs[i].top_k
                    out[i] = Result(scores[row, :kk], indices[row, :kk], run_ms)
        return out

    async def run(self, jobs: list[Job]) -> list[Result | Exception]:
        return await asyncio.get_running_loop().run_in_executor(self.thread, self._run, jobs)

    def close(self):
        self.thread.shutdown(wait=True)


class Batcher:
    """Requests wait in a queue; one task collects a batch and runs it, one at a time."""

    def __init__(self, runner: Runner, wait_ms: float):
        self.runner = runner
        self.wait = wait_ms / 1000
        self.queue: asyncio.Queue = asyncio.Queue()

    async def submit(self, job: Job) -> Result | Exception:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((job, fut))
        return await fut

    async def loop(self):
        while True:
            items = await collect(self.queue, self.runner.max_batch, self.wait)
            try:
                results = await self.runner.run([job for job, _ in items])
            except Exception as err:  # a failed batch fails its requests, not the server
                log.exception('batch of %d failed', len(items))
                results = [err] * len(items)
            for (_, fut), res in zip(items, results):
                if not fut.done():
                    fut.set_result(res)


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({'statusCode': status, 'code': code, 'error': 'Error', 'message': message}, status=status)


def make_app(runner: Runner, args) -> web.Application:
    batcher = Batcher(runner, args.batch_wait_ms)
    classes = len(runner.labels)

    async def classify(request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        body = await request.read()
        if not body:
            return error(400, 'SWIN_EMPTY_BODY', 'no image in the body')
        raw_k = request.query.get('top_k', '5')
        try:
            top_k = int(raw_k)
        except ValueError:
            top_k = 0
        if not 1 <= top_k <= classes:
            return error(400, 'SWIN_BAD_TOP_K', f'top_k must be an integer from 1 to {classes}, got {raw_k}')
        job = Job(body, top_k)
        orientation = probe_jpeg(body) if runner.gpu_decode else None
        if orientation is None:
            try:
                job.pixels = await asyncio.get_running_loop().run_in_executor(None, decode, body, runner.pre)
            except Exception as err:
                return error(400, 'SWIN_IMAGE_DECODE_FAILED', str(err))
        else:
            job.orientation = orientation
        t1 = time.perf_counter()
        res = await batcher.submit(job)
        t2 = time.perf_counter()
        if isinstance(res, DecodeError):
            return error(400, 'SWIN_IMAGE_DECODE_FAILED', str(res))
        if isinstance(res, Exception):
            return error(500, 'SWIN_INFERENCE_FAILED', str(res))
        preds = [
            {'label': runner.labels[i], 'index': int(i), 'score': float(s)} for s, i in zip(res.scores, res.indices)
        ]
        return web.json_response(
            {
                'model': runner.name,
                'variant': 'compile' if runner.compiled else 'eager',
                'backend': 'pytorch',
                'predictions': [preds],
                'timings': {
                    'preprocess_ms': (t1 - t0) * 1e3,
                    'queue_ms': max(0.0, (t2 - t1) * 1e3 - res.run_ms),
                    'inference_ms': res.run_ms,
                    'total_ms': (time.perf_counter() - t0) * 1e3,
                },
            }
        )

    async def ready(_request):
        return web.json_response({'ready': True})

    tasks: list[asyncio.Task] = []

    async def start_batcher(_app):
        tasks.append(asyncio.create_task(batcher.loop()))

    async def stop_batcher(_app):
        for task in tasks:
            task.cancel()

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post('/classify', classify)
    app.router.add_get('/health/ready', ready)
    app.on_startup.append(start_batcher)
    app.on_cleanup.append(stop_batcher)
    return app


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        '--model-dir', help='model repository folder (model.json + .safetensors), e.g. engines/models/swin-fmnist'
    )
    src.add_argument('--arch', help='swintools preset, e.g. swin_tiny (random weights unless --checkpoint)')
    p.add_argument('--checkpoint', help='weights (.safetensors/.pth) for --arch, or instead of the model dir\'s')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--gpu-decode', action='store_true', help='decode JPEG batches with torchvision on --device')
    p.add_argument('--compile', action='store_true', help='torch.compile the model')
    p.add_argument(
        '--compile-mode', default='default', help='torch.compile mode (default, reduce-overhead, max-autotune)'
    )
    p.add_argument('--compile-backend', default='inductor', help='torch.compile backend (default inductor)')
    p.add_argument('--half', action='store_true', help='fp16 autocast (default fp32)')
    p.add_argument('--max-batch', type=int, default=1, help='batch up to N waiting requests (default 1: none)')
    p.add_argument('--batch-wait-ms', type=float, default=2.0, help='longest wait for a batch to fill (default 2)')
    p.add_argument('--threads', type=int, default=0, help='torch intra-op threads on the CPU (default: torch default)')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=8090)
    args = p.parse_args(argv)
    if args.max_batch < 1:
        p.error('--max-batch must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    if args.threads:
        torch.set_num_threads(args.threads)
    runner = Runner(args)
    web.run_app(make_app(runner, args), host=args.host, port=args.port, access_log=None, print=log.info)


if __name__ == '__main__':
    main()
