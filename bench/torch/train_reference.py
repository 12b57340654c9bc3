"""PyTorch side of bench/train.ts: the same models, data, initial weights, batch order and
hyperparameters as shrink's run, read from an .npz the benchmark writes. Run only by the benchmark
(Debian python3-torch), never by CI. Prints one JSON object.

  python3 train_reference.py mlp  SETUP.npz  --epochs 10 --lr 0.05 --momentum 0.9 --threads 1
  python3 train_reference.py cnn-speed SETUP.npz --steps 50 --threads 1
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


def run_cnn_speed(args, setup):
    c1, c2, hidden, classes = [int(v) for v in setup['cnn']]
    model = cnn(c1, c2, hidden, classes)
    load_weights(model, setup)
    x, y = torch.from_numpy(setup['train_x']), torch.from_numpy(setup['train_y'])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    batch = args.batch
    times = []
    for s in range(args.warmup + args.steps):
        idx = torch.arange(s * batch, (s + 1) * batch) % x.shape[0]
        started = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        if s >= args.warmup:
            times.append(time.perf_counter() - started)
    times.sort()
    return {'median_ms': times[len(times) // 2] * 1000, 'steps': len(times), 'peak_rss_mib': peak_rss_mib()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('task', choices=['mlp', 'cnn-speed'])
    parser.add_argument('setup')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--momentum', type=float, default=0.9)
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--steps', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup = np.load(args.setup)
    result = run_mlp(args, setup) if args.task == 'mlp' else run_cnn_speed(args, setup)
    result['torch'] = torch.__version__
    result['threads'] = args.threads
    print(json.dumps(result))


if __name__ == '__main__':
    main()
