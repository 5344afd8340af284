"""The asv suite (airspeed velocity, as NumPy and SciPy track regressions): ``asv.conf.json`` at
the repository root points here. It times scratch's steps on the same configurations and with
the same step code as the harness (nnparity.bench.sides.scratch), so ``asv continuous main HEAD``
flags a commit that slows scratch and ``asv publish`` draws the history. The large
configuration is left out (minutes per commit on 2 cores); torch is not timed here (it does not
change between this project's commits).
"""
from __future__ import annotations

from nnparity.bench import sides
from nnparity.bench.configs import OPS, config
from nnparity.bench.machine import fix_threads

ASV_CONFIGS = ["tiny", "small", "mnist", "wide"]
THREADS = 2


class ScratchStep:
    """time_step: one forward / forward+backward / SGD or Adam train step of the scratch network."""

    params = (ASV_CONFIGS, list(OPS), ["float32", "float64"])
    param_names = ["config", "op", "dtype"]
    timeout = 300

    def setup(self, name, op, dtype):
        self._limits = fix_threads(THREADS)
        self.step = sides.scratch(config(name), op, dtype, THREADS)
        self.step()

    def time_step(self, name, op, dtype):
        self.step()


class ScratchMemory:
    """peakmem_train_sgd: the process's peak while building the network and taking 3 SGD steps."""

    params = (ASV_CONFIGS, ["float32", "float64"])
    param_names = ["config", "dtype"]
    timeout = 300

    def peakmem_train_sgd(self, name, dtype):
        step = sides.scratch(config(name), "train_sgd", dtype, THREADS)
        for _ in range(3):
            step()
