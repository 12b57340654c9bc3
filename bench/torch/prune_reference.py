"""PyTorch side of bench/prune.ts: torch.nn.utils.prune.global_unstructured with L1Unstructured on
the same trained Fashion-MNIST CNN (weights read by ONNX initializer name from an .npz the benchmark
writes), the weights of every Conv2d and Linear ranked together, no fine-tuning; test accuracy and
the share of those weights that are zero. Run only by the benchmark (Debian python3-torch), never
by CI. Prints one JSON object.

  python3 prune_reference.py SETUP.npz --sparsity 0.5 0.8
"""
import argparse
import json

import numpy as np
import torch
import torch.nn.utils.prune as prune
from torch import nn


class Cnn(nn.Module):
    """src/train/init-models.ts cnnModel: attribute names equal the ONNX initializer names."""

    def __init__(self, c1, c2, hidden, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc1 = nn.Linear(c2 * 49, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def load(setup):
    c1, c2, hidden, classes = [int(v) for v in setup['cnn']]
    model = Cnn(c1, c2, hidden, classes)
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if name.endswith('num_batches_tracked'):
                continue
            tensor.copy_(torch.from_numpy(setup[name]).reshape(tensor.shape))
    model.eval()
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item() * 100


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('setup')
    parser.add_argument('--sparsity', type=float, nargs='+', default=[0.5, 0.8])
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setup = np.load(args.setup)
    x = torch.from_numpy(setup['test_x']).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(setup['test_y'])
    dense = load(setup)
    results = []
    for amount in args.sparsity:
        model = load(setup)
        layers = [(m, 'weight') for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=amount)
        zeros = sum(int((m.weight == 0).sum()) for m, _ in layers)
        total = sum(m.weight.numel() for m, _ in layers)
        results.append({'sparsity': amount, 'accuracy': accuracy(model, x, y), 'zero_share': zeros / total})
    print(json.dumps({'torch': torch.__version__, 'dense_accuracy': accuracy(dense, x, y), 'results': results}))


if __name__ == '__main__':
    main()
