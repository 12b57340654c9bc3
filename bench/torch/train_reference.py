"""PyTorch side of bench/train.ts and bench/train-speed.ts: the same models, data, initial weights, batch order and
hyperparameters as shrink's run, read from an .npz the benchmark writes. Run only by the benchmark
(Debian python3-torch), never by CI. Prints one JSON object.

  python3 train_reference.py mlp  SETUP.npz  --epochs 10 --lr 0.05 --momentum 0.9 --threads 1
  python3 train_reference.py serve SETUP.npz --model cnn --threads 2

`serve` times training steps on request (bench/train-speed.ts runs it next to shrink's steps):
each line `steps K` on stdin runs K steps and prints their times (one per --group steps, the
group's time divided by its size), `memory` prints the peak
resident memory, `quit` ends. Thread libraries read their environment (OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS, MKL_NUM_THREADS) at start and the BLAS is found through LD_LIBRARY_PATH,
so the benchmark sets those per process.
"""
import argparse
import json
import resource
import time

import numpy as np
import torch
from torch import nn


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(nn.Flatten(), *layers)


def cnn(c1, c2, hidden, classes):
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 49, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def load_weights(model, setup):
    """Copies shrink's initial weights (w0, w1, ... in PyTorch's parameter order) into the model."""
    params = [p for p in model.parameters()]
    names = [f'w{i}' for i in range(len(params))]
    assert all(n in setup for n in names) and f'w{len(params)}' not in setup, 'weight count differs'

    with torch.no_grad():
        for p, name in zip(params, names):
            p.copy_(torch.from_numpy(setup[name]).reshape(p.shape))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_mlp(args, setup):
    sizes = [int(s) for s in setup['sizes']]
    model = mlp(sizes)
    load_weights(model, setup)
    x, y = torch.from_numpy(setup['train_x']), torch.from_numpy(setup['train_y'])
    tx, ty = torch.from_numpy(setup['test_x']), torch.from_numpy(setup['test_y'])
    orders = setup['orders']
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss()
    batch = args.batch
    steps = 0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.from_numpy(orders[epoch].astype(np.int64))
        for b in range(len(order) // batch):
            idx = order[b * batch:(b + 1) * batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            steps += 1
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = (model(tx).argmax(1) == ty).float().mean().item() * 100
    return {'accuracy': accuracy, 'steps': steps, 'ms_per_step': seconds * 1000 / steps, 'peak_rss_mib': peak_rss_mib()}


def model_of(setup, name):
    if name == 'cnn':
        c1, c2, hidden, classes = [int(v) for v in setup['cnn']]
        return cnn(c1, c2, hidden, classes)
    return mlp([int(s) for s in setup['sizes']])


def serve(args, setup):
    """Steps on request, batches cycling over the setup's samples; only the step itself is timed."""
    model = model_of(setup, args.model)
    load_weights(model, setup)
    x, y = torch.from_numpy(setup['train_x']), torch.from_numpy(setup['train_y'])
    batches = [(x[i:i + args.batch].contiguous(), y[i:i + args.batch].contiguous()) for i in range(0, x.shape[0] - args.batch + 1, args.batch)]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    step = 0
    print(json.dumps({'ready': True, 'torch': torch.__version__, 'threads': torch.get_num_threads(), 'interop_threads': torch.get_num_interop_threads()}), flush=True)
    for line in iter(input, 'quit'):
        words = line.split()
        if words[0] == 'memory':
            print(json.dumps({'peak_rss_mib': peak_rss_mib()}), flush=True)
            continue
        times = []
        for _ in range(int(words[1]) // args.group):
            started = time.perf_counter()
            for _ in range(args.group):
                bx, by = batches[step % len(batches)]
                step += 1
                opt.zero_grad()
                loss = loss_fn(model(bx), by)
                loss.backward()
                opt.step()
            times.append((time.perf_counter() - started) * 1000 / args.group)
        print(json.dumps({'ms': times, 'loss': loss.item()}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('task', choices=['mlp', 'serve'])
    parser.add_argument('setup')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--momentum', type=float, default=0.9)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--model', choices=['mlp', 'cnn'], default='cnn')
    parser.add_argument('--group', type=int, default=1, help='serve: steps timed together (one time per group, divided by the group size)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup = np.load(args.setup)
    if args.task == 'serve':
        return serve(args, setup)
    result = run_mlp(args, setup)
    result['torch'] = torch.__version__
    result['threads'] = args.threads
    print(json.dumps(result))


if __name__ == '__main__':
    main()
