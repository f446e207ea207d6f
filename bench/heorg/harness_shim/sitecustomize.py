"""Loaded by Python at start-up when this directory is on PYTHONPATH (bench/heorg/run.sh puts it there).

When HEORG_MNIST_DIR is set, the harness's `from mnist import mnist` (harness/mnist/mnist.py, which needs
PyTorch and torchvision and downloads MNIST) gets heorg_mnist.py from this directory instead: the same three
functions the harness calls, in numpy, reading MNIST from the local files in HEORG_MNIST_DIR. The harness
checkout itself is left unchanged.
"""

import importlib.abc
import importlib.util
import os
import sys

_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heorg_mnist.py")


class _MnistShimFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == "mnist.mnist":
            return importlib.util.spec_from_file_location(fullname, _SHIM)
        return None


if os.environ.get("HEORG_MNIST_DIR"):
    sys.meta_path.insert(0, _MnistShimFinder())
