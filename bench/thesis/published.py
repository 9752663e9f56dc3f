"""The 2020 study's published figures (Myllenberg & Johansson, LU-CS-EX 2020-46), as restated in
the project's reference (``/work/shared/reference/thesis-facts.md``). Nothing here is measured by
us; the report shows these beside our figures, never mixed with them.

Memory is the study's: flash = weights and biases only, RAM = X-CUBE-AI's activation buffers (or
Keras2C's two ping-pong buffers), both in units of 1000 B, read from its IDE on a NUCLEO-F722ZE.
Accuracy is the study's on its radar test set (Keras ``evaluate()``, the TFLite interpreter for
int8). Channel counts are channels removed from every Conv2D (of 32).
"""
from __future__ import annotations

DEADLINE_MS = 55.43          # one inference per radar frame at 18 Hz, minus 0.13 ms of preprocessing
CLOCK_MHZ = 216
FILTERS = 32

# Accuracy after removing n channels from every conv, by (dtype, re-trained).
ACCURACY_CHANNELS: dict[tuple[str, bool], dict[int, float]] = {
    ("float32", False): {0: 1.000, 8: 0.9916, 9: 0.8869, 13: 0.4862},
    ("float32", True): {0: 1.000, 20: 0.9976, 30: 0.9579},
    ("int8", False): {0: 1.000},
    ("int8", True): {0: 1.000, 20: 0.9976, 30: 0.9567},
}
RETRAIN_FLOOR = (28, 0.9711)  # with re-training accuracy stayed >= 0.9711 up to 28 removed

# X-CUBE-AI (flash kB, RAM kB) by (dtype, channels removed); memory does not depend on re-training.
XCUBE_MEMORY: dict[tuple[str, int], tuple[float, float]] = {
    ("float32", 0): (265.06, 84.74),
    ("int8", 0): (67.15, 22.78),
    ("float32", 20): (57.46, 31.78),
    ("int8", 20): (14.89, 8.88),
    ("float32", 30): (7.66, 5.30),
    ("int8", 30): (2.26, 1.51),
}
# Keras2C float32 (const weights, two ping-pong buffers): (flash kB, RAM kB, accuracy) by setup.
KERAS2C = {
    "unpruned": (313.20, 167.83, 1.000),
    "20 channels removed": (110.46, 65.96, 0.9976),
    "90 % magnitude-pruned, sparse conv": (166.30, 166.26, 0.9855),
}

# Magnitude pruning (tfmot, 15 epochs, frequency 50): accuracy by (dtype, final sparsity).
ACCURACY_MAGNITUDE: dict[tuple[str, float], float] = {
    ("float32", 0.82): 0.9927, ("float32", 0.86): 0.9843, ("float32", 0.90): 0.9855,
    ("float32", 0.94): 0.7063, ("float32", 0.98): 0.3213, ("int8", 0.90): 0.9795,
}

# The study's speed findings: (what, published factor, how we compute ours).
SPEED_CLAIMS = {
    "converter": ("X-CUBE-AI float32 vs Keras2C -O3", 5.0),
    "int8": ("int8 vs float32 on X-CUBE-AI", 2.5),
    "channels": ("channel pruning, best case", 8.0),
    "sparse": ("sparse vs dense Keras2C convolution (90 %)", 2.3),
}
CONV_SHARE = 0.96  # over 96 % of the time was in the convolutions

# The converters we have, in place of the study's.
STAND_IN = {
    "mcusearch": "X-CUBE-AI 5.0 (an optimised, closed vendor library)",
    "mcusearch-ref": "Keras2C (plain C99 loops; the study's open-source converter)",
    "aidge": "(no counterpart: a third-party open-source export)",
    "mcusearch-dense": "Keras2C / X-CUBE-AI dense convolution (zeros stored and multiplied)",
}


def study_setups() -> list[tuple[str, str, int, float, float, float | None]]:
    """The study's headline rows: (setup, dtype, channels removed, flash kB, RAM kB, accuracy)."""
    rows = []
    for (dtype, removed), (flash, ram) in XCUBE_MEMORY.items():
        acc = ACCURACY_CHANNELS[(dtype, True)].get(removed)
        rows.append((f"X-CUBE-AI {dtype}, {removed} channels removed" + (" + re-training" if removed else ""),
                     dtype, removed, flash, ram, acc))
    return rows
