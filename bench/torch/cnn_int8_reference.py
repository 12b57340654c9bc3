"""PyTorch side of bench/quantize-static-cnn-rec.ts: the same trained Fashion-MNIST CNN (weights read
from an .npz the benchmark writes, ONNX initializer names), PyTorch's own static int8 (eager mode,
BatchNorm fused into the convs, the engine's default qconfig: fbgemm when the build has it, else
onednn as in Debian's build, else qnnpack), calibrated on the
same training images, accuracy on the 10k test images, latency at batch 64 of float32 and int8
interleaved. Run only by the benchmark (Debian python3-torch), never by CI. Prints one JSON object.

  python3 cnn_int8_reference.py SETUP.npz --threads 1 --rounds 25
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn
import torch.ao.quantization as tq


class Cnn(nn.Module):
    def __init__(self, c1, c2, hidden, classes, quantized):
        super().__init__()
        self.quant = tq.QuantStub() if quantized else nn.Identity()
        self.conv1, self.bn1, self.relu1, self.pool1 = nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.bn2, self.relu2, self.pool2 = nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1, self.relu3, self.fc2 = nn.Linear(c2 * 49, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        self.dequant = tq.DeQuantStub() if quantized else nn.Identity()

    def forward(self, x):
        x = self.quant(x)
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.dequant(self.fc2(x))


def load(model, setup):
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if name in setup:
                tensor.copy_(torch.from_numpy(setup[name]).reshape(tensor.shape))
            elif not name.endswith('num_batches_tracked'):
                raise SystemExit(f'{name}: not in the setup file')
    return model.eval()


def accuracy(model, x, y):
    with torch.no_grad():
        correct = sum(int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum()) for i in range(0, len(x), 1000))
    return 100 * correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('setup')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--rounds', type=int, default=25)
    parser.add_argument('--runs', type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = next(e for e in ('fbgemm', 'x86', 'onednn', 'qnnpack') if e in torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = engine
    setup = dict(np.load(args.setup))
    c1, c2, hidden, classes = (int(v) for v in setup['sizes'])
    calib = torch.from_numpy(setup['calib_x'])
    tx, ty = torch.from_numpy(setup['test_x']), torch.from_numpy(setup['test_y']).long()

    fp32 = load(Cnn(c1, c2, hidden, classes, False), setup)
    q = load(Cnn(c1, c2, hidden, classes, True), setup)
    tq.fuse_modules(q, [['conv1', 'bn1', 'relu1'], ['conv2', 'bn2', 'relu2'], ['fc1', 'relu3']], inplace=True)
    q.qconfig = tq.get_default_qconfig(engine)
    tq.prepare(q, inplace=True)
    with torch.no_grad():
        for i in range(0, len(calib), 64):
            q(calib[i:i + 64])
    tq.convert(q, inplace=True)

    batch = tx[:64]
    times = {'fp32': [], 'int8': []}
    models = {'fp32': fp32, 'int8': q}
    with torch.no_grad():
        for m in models.values():
            for _ in range(3):
                m(batch)
        for _ in range(args.rounds):
            for name, m in models.items():
                start = time.perf_counter()
                for _ in range(args.runs):
                    m(batch)
                times[name].append((time.perf_counter() - start) / args.runs * 1000)
    median = {k: float(np.median(v)) for k, v in times.items()}
    print(json.dumps({
        'torch': torch.__version__,
        'engine': torch.backends.quantized.engine,
        'threads': torch.get_num_threads(),
        'fp32_accuracy': accuracy(fp32, tx, ty),
        'int8_accuracy': accuracy(q, tx, ty),
        'fp32_ms': median['fp32'],
        'int8_ms': median['int8'],
        'speedup': median['fp32'] / median['int8'],
    }))


if __name__ == '__main__':
    main()
