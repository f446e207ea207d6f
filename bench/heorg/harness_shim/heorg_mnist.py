"""A numpy stand-in for the harness's harness/mnist/mnist.py, without PyTorch and without the network.

The harness calls three functions of that module: export_test_data (step 1, generate_dataset.py),
export_test_pixels_labels (step 4, generate_input.py) and run_predict (step 10.1, cleartext_impl.py: the
harness's own plaintext model, the reference MLP 784-128-64-10 with ReLU). This module has the same
functions with the same arguments and output files:

- MNIST comes from the gzip IDX files in $HEORG_MNIST_DIR (t10k-*, train-*), never from the network.
- Pixels are written as intensity / 255 with 6 decimals, one image per line, as torchvision's ToTensor()
  and the harness's f"{pixel:.6f}" give them; labels one per line.
- Sampling: the harness draws torch.randperm(10000)[:n] after torch.manual_seed(seed); this module draws
  numpy.random.default_rng(seed).permutation(10000)[:n]. Same distribution (n distinct random test images),
  not the same images for the same seed.
- The reference MLP is trained here in numpy with the harness's recipe (80/20 split of the 60,000 training
  images, Adam lr 1e-3, batch 64, 15 epochs, PyTorch's default initialisation, inputs normalised with mean
  0.1307 and sd 0.3081, the epoch with the best validation accuracy kept) and saved beside the harness's
  model path as mnist_ffnn_model.npz; later runs load it.
"""

import gzip
import os
from pathlib import Path

import numpy as np

MEAN, STD = 0.1307, 0.3081


def _mnist_dir():
    d = os.environ.get("HEORG_MNIST_DIR")
    if not d:
        raise RuntimeError("HEORG_MNIST_DIR is not set (the directory of the MNIST .gz IDX files)")
    return Path(d)


def _read_idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"{path}: not an IDX file with magic {magic:#x}")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _load(split):
    d = _mnist_dir()
    images = _read_idx(d / f"{split}-images-idx3-ubyte.gz", 0x803).reshape(-1, 784)
    labels = _read_idx(d / f"{split}-labels-idx1-ubyte.gz", 0x801)
    return images, labels


def export_test_pixels_labels(data_dir=None, pixels_file="mnist_pixels.txt", labels_file="mnist_labels.txt",
                              num_samples=-1, seed=None):
    """The harness's function: num_samples random test images (all, in order, for -1 or 10,000)."""
    images, labels = _load("t10k")
    total = len(labels)
    n = total if num_samples == -1 else min(num_samples, total)
    if n == total:
        idx = np.arange(total)
    else:
        idx = np.random.default_rng(seed).permutation(total)[:n]
    pixels = images[idx].astype(np.float32) / np.float32(255.0)
    np.savetxt(pixels_file, pixels, fmt="%.6f", delimiter=" ")
    np.savetxt(labels_file, labels[idx], fmt="%d")


def export_test_data(data_dir=None, output_file="mnist_test.txt", num_samples=-1, seed=None):
    """The harness's function: <base>_pixels.txt and <base>_labels.txt."""
    base = str(output_file).rsplit(".", 1)[0] if "." in str(output_file) else str(output_file)
    export_test_pixels_labels(data_dir, f"{base}_pixels.txt", f"{base}_labels.txt", num_samples, seed)


def _init_linear(rng, fan_in, fan_out):
    bound = 1.0 / np.sqrt(fan_in)  # PyTorch's nn.Linear default (kaiming_uniform with a = sqrt(5))
    return [rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32),
            rng.uniform(-bound, bound, fan_out).astype(np.float32)]


def _forward(params, x):
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.maximum(x @ w1 + b1, 0)
    h2 = np.maximum(h1 @ w2 + b2, 0)
    return h1, h2, h2 @ w3 + b3


def _train(weights_path, epochs=15, batch=64, lr=1e-3, seed=42):
    images, labels = _load("train")
    x_all = (images.astype(np.float32) / 255.0 - MEAN) / STD
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    split = int(0.8 * len(labels))
    tr, va = order[:split], order[split:]
    params = _init_linear(rng, 784, 128) + _init_linear(rng, 128, 64) + _init_linear(rng, 64, 10)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    b1, b2, eps, step, best = 0.9, 0.999, 1e-8, 0, -1.0
    for epoch in range(epochs):
        perm = rng.permutation(tr)
        for s in range(0, len(perm), batch):
            ids = perm[s:s + batch]
            x, y = x_all[ids], labels[ids]
            h1, h2, logits = _forward(params, x)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(y)), y] -= 1
            g3 = p / len(y)
            g2 = (g3 @ params[4].T) * (h2 > 0)
            g1 = (g2 @ params[2].T) * (h1 > 0)
            grads = [x.T @ g1, g1.sum(0), h1.T @ g2, g2.sum(0), h2.T @ g3, g3.sum(0)]
            step += 1
            for i, g in enumerate(grads):
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                mh, vh = m[i] / (1 - b1 ** step), v[i] / (1 - b2 ** step)
                params[i] -= (lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        acc = float((_forward(params, x_all[va])[2].argmax(1) == labels[va]).mean())
        print(f"[heorg-mnist] reference MLP epoch {epoch + 1}/{epochs}: validation accuracy {100 * acc:.2f}%")
        if acc > best:
            best = acc
            np.savez(weights_path, *params)


def ensure_reference_model(model_path):
    """The numpy weights of the reference MLP beside model_path (.npz), trained first if missing."""
    weights = Path(model_path).with_suffix(".npz")
    if not weights.exists():
        print(f"[heorg-mnist] {weights} not found: training the reference MLP 784-128-64-10 in numpy")
        _train(weights)
    return weights


def run_predict(model_path, pixels_file, predictions_file, device="cpu"):
    """The harness's function: the reference MLP's labels for the pixels file, one per line."""
    weights = ensure_reference_model(model_path)
    with np.load(weights) as f:
        params = [f[f"arr_{i}"] for i in range(6)]
    x = np.loadtxt(pixels_file, dtype=np.float32, ndmin=2)
    if x.shape[1] != 784:
        raise ValueError(f"Each line must contain exactly 784 pixel values, got {x.shape[1]}")
    preds = _forward(params, (x - MEAN) / STD)[2].argmax(1)
    np.savetxt(predictions_file, preds, fmt="%d")
    return preds.tolist()
