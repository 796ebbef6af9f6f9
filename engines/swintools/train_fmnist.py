"""Trains the default model swin-fmnist on Fashion-MNIST (GPU; CPU works but is slow).

    python -m swintools.train_fmnist --bench 30                 # img/s of one training step loop
    python -m swintools.train_fmnist --seed 0 --epochs 12 --out runs/a

Training sees exactly what the service feeds the model: each 28x28 image is augmented
(random crop from a 2-pixel zero padding, horizontal flip), resized to 256x256 with the
torch copy of sharp's "linear" kernel (fmnist.resize_float: equal to sharp's output),
repeated to RGB as uint8-valued NHWC and normalised by the same UInt8NHWC wrapper the
ONNX graphs start with. Everything, data included, lives on the GPU.

Writes <out>/train.log (seed, hyper-parameters, loss and accuracy per epoch, final fp32
test accuracy, time, hardware), <out>/train.json (the same as data) and
<out>/swin-fmnist.safetensors (fp32 weights, timm key layout).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F

from .arch import PREPROCESS, build_model, count_params, get_arch
from .fmnist import load_split, resize_float
from .make_model_repo import save_weights
from .wrapper import UInt8NHWC

ARCH = 'swin-fmnist'


class Log:
    def __init__(self, path: str | None):
        self.f = open(path, 'w') if path else None

    def __call__(self, msg: str):
        print(msg, flush=True)
        if self.f:
            self.f.write(msg + '\n')
            self.f.flush()


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """uint8 [B, 28, 28] -> random crop from zero padding + random horizontal flip."""
    b, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=x.device, generator=gen)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, h, 1]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, w]
    out = xp[torch.arange(b, device=x.device)[:, None, None], rows, cols]
    flip = torch.rand(b, device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None], out.flip(-1), out)


def to_nhwc(gray28: torch.Tensor, size: int, kernel: str) -> torch.Tensor:
    """[B, 28, 28] -> float32 [B, size, size, 3] holding sharp's uint8 values."""
    return resize_float(gray28, size, kernel).unsqueeze(-1).expand(-1, -1, -1, 3)


@torch.no_grad()
def evaluate(wrapped, images, labels, size, kernel, batch=500, amp=True) -> tuple[float, float]:
    wrapped.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(images), batch):
        x = to_nhwc(images[i : i + batch], size, kernel)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = wrapped(x).float()
        loss += F.cross_entropy(logits, labels[i : i + batch], reduction='sum').item()
        correct += (logits.argmax(1) == labels[i : i + batch]).sum().item()
    return correct / len(images), loss / len(images)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--epochs', type=int, default=12)
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--lr', type=float, default=2e-3, help='peak AdamW learning rate')
    p.add_argument('--weight-decay', type=float, default=0.05)
    p.add_argument('--warmup-epochs', type=float, default=1.0)
    p.add_argument('--drop-path', type=float, default=0.0, help='stochastic depth rate (0: off; short schedules)')
    p.add_argument('--label-smoothing', type=float, default=0.1)
    p.add_argument('--no-amp', action='store_true', help='train in fp32 instead of bf16 autocast')
    p.add_argument('--compile', action='store_true', help='torch.compile the training forward/backward')
    p.add_argument(
        '--deterministic',
        action='store_true',
        help="PyTorch's deterministic kernels (slower; same-seed runs agree without it too)",
    )
    p.add_argument('--data-root', help='folder with the IDX .gz or .xz files (default: $FMNIST_ROOT or Debian\'s)')
    p.add_argument(
        '--eval-every', type=int, default=1, help='evaluate on the test set every N epochs (and after the last)'
    )
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--out', help='output folder (log, json, weights)')
    p.add_argument('--bench', type=int, default=0, help='only time this many training steps and print img/s')
    p.add_argument('--limit-train', type=int, default=0, help='use only the first N training images (smoke tests)')
    p.add_argument('--limit-test', type=int, default=0, help='use only the first N test images (smoke tests)')
    p.add_argument(
        '--min-epoch1-acc',
        type=float,
        default=0.3,
        help='stop (exit 3) if training accuracy after epoch 1 is below this: a run stuck at chance '
        '(seen once, models/swin-fmnist/train-26ep-collapsed.log) wastes no more GPU time',
    )
    args = p.parse_args(argv)

    device = torch.device(args.device)
    amp = not args.no_amp
    arch = get_arch(ARCH)
    pre = PREPROCESS[ARCH]
    size, kernel = arch['img_size'], pre['kernel']
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    log = Log(os.path.join(args.out, 'train.log') if args.out else None)

    # Reproducibility: one seed drives init, data order and augmentation. Bitwise
    # determinism (--deterministic) is optional: GPU atomics change the last bits only.
    if args.deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)

    tr_x, tr_y = load_split('train', args.data_root)
    te_x, te_y = load_split('test', args.data_root)
    if args.limit_train:
        tr_x, tr_y = tr_x[: args.limit_train], tr_y[: args.limit_train]
    if args.limit_test:
        te_x, te_y = te_x[: args.limit_test], te_y[: args.limit_test]
    tr_x = torch.from_numpy(tr_x.copy()).to(device)
    tr_y = torch.from_numpy(tr_y.astype('int64')).to(device)
    te_x = torch.from_numpy(te_x.copy()).to(device)
    te_y = torch.from_numpy(te_y.astype('int64')).to(device)

    # drop_path_rate: timm's stochastic depth, rising linearly to this rate in the last block.
    model = build_model(arch, seed=args.seed, drop_path_rate=args.drop_path).to(device)
    wrapped = UInt8NHWC(model, pre['mean'], pre['std']).to(device)
    decay = [p_ for n, p_ in model.named_parameters() if p_.ndim > 1 and 'cpb_mlp' not in n]
    no_decay = [p_ for n, p_ in model.named_parameters() if not (p_.ndim > 1 and 'cpb_mlp' not in n)]
    opt = torch.optim.AdamW(
        [{'params': decay, 'weight_decay': args.weight_decay}, {'params': no_decay, 'weight_decay': 0.0}],
        lr=args.lr,
        betas=(0.9, 0.999),
        fused=device.type == 'cuda',
    )
    n = len(tr_x)
    steps_per_epoch = n // args.batch_size
    total = steps_per_epoch * args.epochs
    warm = int(steps_per_epoch * args.warmup_epochs)

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    # Compiled module for training only; evaluation runs the eager module (same weights)
    # so eval-mode and the eval batch size cause no recompilation.
    train_fwd = torch.compile(wrapped) if args.compile else wrapped

    def train_step(xb, yb, step):
        for g in opt.param_groups:
            g['lr'] = lr_at(step)
        x = to_nhwc(augment(xb, gen), size, kernel)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = train_fwd(x)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss.detach(), (logits.argmax(1) == yb).sum()

    hw = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'
    if args.bench:
        wrapped.train()
        perm = torch.randperm(n, device=device, generator=gen)
        for i in range(args.bench + 5):
            if i == 5:
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                t0 = time.time()
            idx = perm[(i * args.batch_size) % (n - args.batch_size) :][: args.batch_size]
            train_step(tr_x[idx], tr_y[idx], 0)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        ips = args.bench * args.batch_size / (time.time() - t0)
        print(
            json.dumps(
                {
                    'bench_img_per_s': round(ips, 1),
                    'batch_size': args.batch_size,
                    'hardware': hw,
                    'compile': args.compile,
                    'deterministic': args.deterministic,
                }
            )
        )
        return 0

    log(
        f'swin-fmnist training: seed {args.seed}, {args.epochs} epochs x {steps_per_epoch} steps of '
        f'{args.batch_size}, AdamW lr {args.lr} wd {args.weight_decay} warmup {args.warmup_epochs} ep cosine, '
        f'drop_path {args.drop_path}, label smoothing {args.label_smoothing}, '
        f"{'bf16 autocast' if amp else 'fp32'}, compile {args.compile}, deterministic {args.deterministic}, augment crop(pad 2)+hflip on 28x28, resize 28->256 {kernel}"
    )
    log(f'model: {count_params(model) / 1e6:.3f} M parameters, arch {json.dumps(arch)}')
    log(f'hardware: {hw}; torch {torch.__version__}; host {platform.node()}; train {n} test {len(te_x)} images')
    history = []
    t_start = time.time()
    step = 0
    for epoch in range(args.epochs):
        wrapped.train()
        t0 = time.time()
        perm = torch.randperm(n, device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            l, c = train_step(tr_x[idx], tr_y[idx], step)
            loss_sum += l
            correct += c
            step += 1
        train_loss = loss_sum.item() / steps_per_epoch
        train_acc = correct.item() / (steps_per_epoch * args.batch_size)
        ep_time = time.time() - t0
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            test_acc, test_loss = evaluate(wrapped, te_x, te_y, size, kernel, amp=amp)
        else:
            test_acc, test_loss = float('nan'), float('nan')
        rec = {
            'epoch': epoch + 1,
            'train_loss': round(train_loss, 4),
            'train_acc': round(train_acc, 4),
            'test_loss_amp': round(test_loss, 4),
            'test_acc_amp': round(test_acc, 4),
            'lr_end': lr_at(step - 1),
            'epoch_seconds': round(ep_time, 1),
            'img_per_s': round(steps_per_epoch * args.batch_size / ep_time, 1),
        }
        history.append(rec)
        if args.out:  # weights after every epoch: a cut-off run still leaves its latest model
            save_weights(
                model,
                os.path.join(args.out, 'swin-fmnist.safetensors'),
                {
                    'arch': json.dumps(arch),
                    'source': f'train_fmnist seed {args.seed}, epoch {epoch + 1} of {args.epochs} (unfinished)',
                    'torch': torch.__version__,
                },
            )
        log(
            f"epoch {epoch + 1:3d}/{args.epochs} train_loss {train_loss:.4f} train_acc {train_acc * 100:.2f}% "
            f"test_acc({'bf16' if amp else 'fp32'}) {test_acc * 100:.2f}% test_loss {test_loss:.4f} {ep_time:.1f} s "
            f"({rec['img_per_s']:.0f} img/s)"
        )
        if epoch == 0 and train_acc < args.min_epoch1_acc and not args.limit_train:
            log(
                f'STOPPED: training accuracy {train_acc * 100:.1f}% after epoch 1 is below '
                f'{args.min_epoch1_acc * 100:.0f}%: the run is stuck (see --min-epoch1-acc)'
            )
            return 3
    train_seconds = time.time() - t_start
    test_acc, test_loss = evaluate(wrapped, te_x, te_y, size, kernel, amp=False)
    log(f'final test accuracy (fp32, {len(te_x)} images): {test_acc * 100:.2f}%  test loss {test_loss:.4f}')
    log(f'training time {train_seconds:.1f} s on {hw}')
    summary = {
        'seed': args.seed,
        'epochs': args.epochs,
        'args': vars(args),
        'arch': arch,
        'preprocess': pre,
        'history': history,
        'test_acc_fp32': test_acc,
        'test_loss_fp32': test_loss,
        'train_seconds': round(train_seconds, 1),
        'hardware': hw,
        'torch': torch.__version__,
    }
    if args.out:
        with open(os.path.join(args.out, 'train.json'), 'w') as f:
            json.dump(summary, f, indent=1)
        model.eval()
        save_weights(
            model,
            os.path.join(args.out, 'swin-fmnist.safetensors'),
            {
                'arch': json.dumps(arch),
                'source': f'train_fmnist seed {args.seed}, {args.epochs} epochs, test acc {test_acc:.4f}',
                'torch': torch.__version__,
            },
        )
        log(f"wrote {os.path.join(args.out, 'swin-fmnist.safetensors')}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
