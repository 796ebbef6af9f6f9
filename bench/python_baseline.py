"""The baseline a user would otherwise write: a minimal aiohttp server with the same
/classify contract as swin-serve (raw image body -> top-k JSON), running the same
model with PyTorch eager or torch.compile, decoding with PIL.

    # CPU, the embedded model (weights from its model repository)
    python bench/python_baseline.py --model-dir engines/models/swin-fmnist --port 8090
    # GPU, Swin-T (random weights unless --checkpoint), torch.compile, naive batching
    python bench/python_baseline.py --arch swin_tiny --device cuda --compile --max-batch 32 --port 8090

Request path: aiohttp reads the body; PIL decodes and resizes in a thread pool
(default executor, so the event loop keeps accepting); the uint8 HWC array goes to
the device where mean/std are applied (swintools' UInt8NHWC, the same graph the
engines run); softmax and top-k; JSON reply.

Batching: --max-batch 1 (default) runs each request on its own, one forward at a
time. --max-batch N collects whatever requests are waiting (up to N, waiting at
most --batch-wait-ms for more) into one forward: the naive batcher most hand-written
servers grow. With --compile, batches are padded to the next power of two so only a
few shapes compile (all compiled at start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from aiohttp import web
from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'engines'))
from swintools.arch import PREPROCESS, build_model, get_arch
from swintools.wrapper import UInt8NHWC

PIL_KERNEL = {
    'nearest': Image.NEAREST,
    'linear': Image.BILINEAR,
    'cubic': Image.BICUBIC,
    'mitchell': Image.BICUBIC,
    'lanczos2': Image.LANCZOS,
    'lanczos3': Image.LANCZOS,
}


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


def decode(data: bytes, pre: dict) -> np.ndarray:
    """Encoded image -> uint8 [crop, crop, 3] the way the model's preprocessing says, with PIL."""
    img = Image.open(io.BytesIO(data))
    img = ImageOps.exif_transpose(img).convert('RGB')
    kernel = PIL_KERNEL[pre['kernel']]
    crop = pre['crop']
    if pre['mode'] == 'squash':
        img = img.resize((crop, crop), kernel)
    else:
        w, h = img.size
        s = pre['resize'] / min(w, h)
        nw, nh = max(crop, round(w * s)), max(crop, round(h * s))
        img = img.resize((nw, nh), kernel)
        left, top = (nw - crop) // 2, (nh - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
    return np.array(img, dtype=np.uint8)


class Runner:
    """Owns the model; forward() runs in one worker thread so calls never overlap."""

    def __init__(self, args):
        torch.set_grad_enabled(False)
        self.device = torch.device(args.device)
        model, self.arch, self.pre, self.labels, self.name = load_model(args)
        wrapped = UInt8NHWC(model, self.pre['mean'], self.pre['std']).to(self.device).eval()
        self.half = args.half
        self.compiled = args.compile
        self.model = torch.compile(wrapped, mode=args.compile_mode) if args.compile else wrapped
        self.max_batch = args.max_batch
        self.gpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix='forward')
        size = self.pre['crop']
        # 1, 2, 4, ... below max_batch, then max_batch itself
        self.buckets = sorted({1 << k for k in range(16) if 1 << k < self.max_batch} | {self.max_batch})
        t0 = time.time()

        # Warm up (and compile) on the forward thread itself: requests run there, and a
        # graph compiled on another thread was seen to recompile or stall on its first call.
        def warm():
            for b in self.buckets if args.compile else [1, self.max_batch]:
                for _ in range(3):
                    self._forward(np.zeros((b, size, size, 3), np.uint8))

        self.gpu.submit(warm).result()
        print(
            f'baseline: {self.name} on {self.device} ({"torch.compile " + args.compile_mode if args.compile else "eager"}'
            f'{", fp16 autocast" if self.half else ", fp32"}), max batch {self.max_batch}, warm-up {time.time() - t0:.1f}s',
            flush=True,
        )

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if self.compiled:
            padded = next(b for b in self.buckets if b >= n)
            if padded > n:
                batch = np.concatenate([batch, np.zeros((padded - n, *batch.shape[1:]), np.uint8)])
        x = torch.from_numpy(batch).to(self.device, non_blocking=False)
        # grad mode is per thread: this runs in the forward thread, not where __init__ ran
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
            logits = self.model(x)
        probs = torch.softmax(logits.float(), dim=-1)[:n]
        return probs.cpu().numpy()

    async def forward(self, batch: np.ndarray) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self.gpu, self._forward, batch)


class NaiveBatcher:
    """Requests wait in a queue; one task takes what is there (up to max_batch,
    waiting up to wait_ms for more) and runs it as one forward."""

    def __init__(self, runner: Runner, wait_ms: float):
        self.runner = runner
        self.wait = wait_ms / 1000
        self.queue: asyncio.Queue = asyncio.Queue()

    async def submit(self, pixels: np.ndarray) -> np.ndarray:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((pixels, fut))
        return await fut

    async def loop(self):
        while True:
            items = [await self.queue.get()]
            deadline = time.monotonic() + self.wait
            while len(items) < self.runner.max_batch:
                timeout = deadline - time.monotonic()
                try:
                    items.append(
                        self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self.queue.get(), timeout)
                    )
                except (TimeoutError, asyncio.QueueEmpty):
                    break
            try:
                probs = await self.runner.forward(np.stack([p for p, _ in items]))
                for (_, fut), row in zip(items, probs):
                    if not fut.done():
                        fut.set_result(row)
            except Exception as err:  # a failed batch fails its requests, not the server
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(err)


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({'statusCode': status, 'code': code, 'error': 'Error', 'message': message}, status=status)


def make_app(runner: Runner, args) -> web.Application:
    batcher = NaiveBatcher(runner, args.batch_wait_ms) if runner.max_batch > 1 else None
    lock = asyncio.Lock()

    async def classify(request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        body = await request.read()
        if not body:
            return error(400, 'SWIN_EMPTY_BODY', 'no image in the body')
        top_k = int(request.query.get('top_k', 5))
        loop = asyncio.get_running_loop()
        try:
            pixels = await loop.run_in_executor(None, decode, body, runner.pre)
        except Exception as err:
            return error(400, 'SWIN_IMAGE_DECODE_FAILED', str(err))
        t1 = time.perf_counter()
        if batcher:
            probs = await batcher.submit(pixels)
        else:
            async with lock:
                probs = (await runner.forward(pixels[None]))[0]
        t2 = time.perf_counter()
        idx = np.argsort(-probs)[:top_k]
        preds = [{'label': runner.labels[i], 'index': int(i), 'score': float(probs[i])} for i in idx]
        return web.json_response(
            {
                'model': runner.name,
                'variant': 'compile' if runner.compiled else 'eager',
                'backend': 'pytorch',
                'predictions': [preds],
                'timings': {
                    'preprocess_ms': (t1 - t0) * 1e3,
                    'queue_ms': 0.0,
                    'inference_ms': (t2 - t1) * 1e3,
                    'total_ms': (time.perf_counter() - t0) * 1e3,
                },
            }
        )

    async def ready(_request):
        return web.json_response({'ready': True})

    async def start_batcher(app):
        if batcher:
            app['batcher_task'] = asyncio.create_task(batcher.loop())

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post('/classify', classify)
    app.router.add_get('/health/ready', ready)
    app.on_startup.append(start_batcher)
    return app


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        '--model-dir', help='model repository folder (model.json + .safetensors), e.g. engines/models/swin-fmnist'
    )
    src.add_argument('--arch', help='swintools preset, e.g. swin_tiny (random weights unless --checkpoint)')
    p.add_argument('--checkpoint', help='weights (.safetensors/.pth) for --arch, or instead of the model dir\'s')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--compile', action='store_true', help='torch.compile the model')
    p.add_argument(
        '--compile-mode', default='default', help='torch.compile mode (default, reduce-overhead, max-autotune)'
    )
    p.add_argument('--half', action='store_true', help='fp16 autocast (default fp32)')
    p.add_argument('--max-batch', type=int, default=1, help='naive batching up to N requests (default 1: none)')
    p.add_argument('--batch-wait-ms', type=float, default=2.0, help='longest wait for a batch to fill (default 2)')
    p.add_argument('--threads', type=int, default=0, help='torch intra-op threads on the CPU (default: torch default)')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=8090)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # aiohttp logs handler exceptions here
    if args.threads:
        torch.set_num_threads(args.threads)
    runner = Runner(args)
    web.run_app(make_app(runner, args), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == '__main__':
    main()
