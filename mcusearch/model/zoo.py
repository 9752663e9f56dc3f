"""The model zoo: named tf-keras models that users and tests bring to the converters (issue 9).

* the four MLPerf Tiny v1.0 reference models, written layer by layer from their published
  architecture descriptions (DS-CNN keyword spotting, MobileNetV1 0.25 visual wake words,
  ResNet-8 CIFAR-10 with projection shortcuts, the fully connected anomaly-detection
  auto-encoder);
* keras.applications MobileNet (alpha 0.25) and MobileNetV2 (alpha 0.35) at 96x96x3,
  ``weights=None`` (nothing is downloaded);
* small models (< 200 k MACs each) that each exercise one family of operators.

Every model gets random weights that keep its activations in range (:func:`calibrate`): each
BatchNormalization's moving statistics are set to the batch statistics of its input, and each
convolution or dense layer with a bias is rescaled so that its pre-activation output has zero
mean and unit spread per channel over a batch of :func:`sample_inputs`. Different inputs then
give clearly different outputs, so a firmware-versus-host output check proves something.

    from mcusearch.model import zoo
    model = zoo.build("mlperf_ds_cnn")            # calibrated, deterministic for a seed
    x = zoo.sample_inputs("mlperf_ds_cnn", 16)     # (16, 49, 10, 1) float32
    zoo.macs(model), zoo.folded_params(model)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.model.evaluate import count_macs

L = tf.keras.layers
CALIBRATION_SAMPLES = 64       # inputs calibrate() sees when build() calls it
CALIBRATION_SEED_OFFSET = 1000  # its inputs differ from sample_inputs(name, n, seed)'s


@dataclass(frozen=True)
class Reference:
    """Published figures of a model, with where they come from."""

    macs: int
    params: int      # weights + biases of the published (BatchNorm-folded) model
    source: str


@dataclass(frozen=True)
class ZooModel:
    """One entry of the zoo: a builder and what the model is."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    families: tuple[str, ...]          # operator families it exercises
    builder: Callable[[], tf.keras.Model]
    classifier: bool = True            # its output is class probabilities (top class is meaningful)
    reference: Reference | None = None


# ---------------------------------------------------------------------------------------------
# MLPerf Tiny v1.0 reference models
# ---------------------------------------------------------------------------------------------

# MACs and layer tables: `mltk summarize --tflite` of the MLPerf Tiny reference models, in the
# docstrings of SiliconLabs/mltk mltk/models/tinyml/{keyword_spotting,visual_wake_words,
# image_classification,anomaly_detection}.py. The parameter counts are the sums of the weight and
# bias tensor shapes listed in those same tables (BatchNorm folded into the convolutions).
# (The MLPerf Tiny paper, Banbury et al. 2021, Table 1, gives the int8 model sizes: DS-CNN
# 52.5 KB, MobileNetV1 325 KB, ResNet 96 KB, FC-AutoEncoder 270 KB: file sizes, not counts.)
_MLTK = "SiliconLabs/mltk mltk/models/tinyml/{}.py (mltk summarize --tflite)"


def _conv_bn_relu(x, filters: int, kernel, strides=1, name: str = ""):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def _dw_bn_relu(x, strides=1, name: str = ""):
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", name=f"{name}_dw")(x)
    x = L.BatchNormalization(name=f"{name}_dw_bn")(x)
    return L.ReLU(name=f"{name}_dw_relu")(x)


def mlperf_ds_cnn() -> tf.keras.Model:
    """Keyword spotting DS-CNN: Conv 10x4 stride 2 (64) + BN + ReLU, four depthwise-separable
    blocks (depthwise 3x3 + BN + ReLU, pointwise 64 + BN + ReLU), average pool over the whole
    25x5 map, Dense 12 softmax. Dropout as in the reference (inactive at inference)."""
    inp = tf.keras.Input((49, 10, 1), name="input")
    x = _conv_bn_relu(inp, 64, (10, 4), strides=2, name="stem")
    x = L.Dropout(0.2, name="stem_dropout")(x)
    for i in range(1, 5):
        x = _dw_bn_relu(x, name=f"ds{i}")
        x = _conv_bn_relu(x, 64, 1, name=f"ds{i}_pw")
    x = L.Dropout(0.4, name="head_dropout")(x)
    x = L.AveragePooling2D((25, 5), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(12, activation="softmax", name="fc")(x)
    return tf.keras.Model(inp, out, name="mlperf_ds_cnn")


def mlperf_mobilenet_vww() -> tf.keras.Model:
    """Visual wake words MobileNetV1 alpha 0.25 at 96x96x3: Conv 3x3 stride 2 (8) + BN + ReLU,
    13 depthwise-separable blocks (stride 2 at blocks 2, 4, 6 and 12), average pool 3x3,
    Dense 2 softmax."""
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1),
              (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]
    inp = tf.keras.Input((96, 96, 3), name="input")
    x = _conv_bn_relu(inp, 8, 3, strides=2, name="stem")
    for i, (filters, stride) in enumerate(blocks, 1):
        x = _dw_bn_relu(x, strides=stride, name=f"ds{i}")
        x = _conv_bn_relu(x, filters, 1, name=f"ds{i}_pw")
    x = L.AveragePooling2D(3, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(2, activation="softmax", name="fc")(x)
    return tf.keras.Model(inp, out, name="mlperf_mobilenet_vww")


def _resnet_stack(x, filters: int, strides: int, name: str):
    """Two 3x3 convs with BN; the skip is the identity or, when the shape changes, a 1x1 conv
    with the same stride (the projection shortcut); Add, then ReLU."""
    y = _conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_a")
    y = L.Conv2D(filters, 3, padding="same", name=f"{name}_b_conv")(y)
    y = L.BatchNormalization(name=f"{name}_b_bn")(y)
    if strides != 1 or x.shape[-1] != filters:
        x = L.Conv2D(filters, 1, strides=strides, padding="same", name=f"{name}_skip")(x)
    x = L.Add(name=f"{name}_add")([x, y])
    return L.ReLU(name=f"{name}_relu")(x)


def mlperf_resnet8() -> tf.keras.Model:
    """Image classification ResNet-8 on 32x32x3: Conv 3x3 (16) + BN + ReLU, three residual
    stacks of 16, 32 and 64 filters (the last two stride 2 with 1x1 stride-2 projection
    shortcuts), average pool 8x8, Dense 10 softmax."""
    inp = tf.keras.Input((32, 32, 3), name="input")
    x = _conv_bn_relu(inp, 16, 3, name="stem")
    x = _resnet_stack(x, 16, 1, "stack1")
    x = _resnet_stack(x, 32, 2, "stack2")
    x = _resnet_stack(x, 64, 2, "stack3")
    x = L.AveragePooling2D(8, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(10, activation="softmax", name="fc")(x)
    return tf.keras.Model(inp, out, name="mlperf_resnet8")


def mlperf_fc_autoencoder() -> tf.keras.Model:
    """Anomaly detection auto-encoder (DCASE 2020 task 2 baseline): 640 inputs, four Dense 128
    + BN + ReLU, a Dense 8 + BN + ReLU bottleneck, four Dense 128 + BN + ReLU, Dense 640."""
    inp = tf.keras.Input((640,), name="input")
    x = inp
    for i, units in enumerate([128, 128, 128, 128, 8, 128, 128, 128, 128], 1):
        x = L.Dense(units, name=f"fc{i}")(x)
        x = L.BatchNormalization(name=f"fc{i}_bn")(x)
        x = L.ReLU(name=f"fc{i}_relu")(x)
    out = L.Dense(640, name="fc_out")(x)
    return tf.keras.Model(inp, out, name="mlperf_fc_autoencoder")


# ---------------------------------------------------------------------------------------------
# keras.applications
# ---------------------------------------------------------------------------------------------

def keras_mobilenet_025() -> tf.keras.Model:
    """tf.keras.applications.MobileNet, alpha 0.25, 96x96x3, 2 classes, weights=None."""
    return tf.keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None,
                                           classes=2)


def keras_mobilenet_v2_035() -> tf.keras.Model:
    """tf.keras.applications.MobileNetV2, alpha 0.35, 96x96x3, 2 classes, weights=None."""
    return tf.keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                             classes=2)


# ---------------------------------------------------------------------------------------------
# small models, one operator family each (< 200 k MACs)
# ---------------------------------------------------------------------------------------------

def _head(x, classes: int = 4):
    """Flatten + Dense softmax: the plainest classifier head."""
    x = L.Flatten(name="flatten")(x)
    return L.Dense(classes, activation="softmax", name="fc")(x)


def se_block() -> tf.keras.Model:
    """Squeeze-and-excite: GlobalAveragePooling2D -> Dense ReLU -> Dense sigmoid -> Reshape
    -> Multiply with the feature map."""
    inp = tf.keras.Input((12, 12, 4), name="input")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inp)
    s = L.GlobalAveragePooling2D(name="squeeze")(x)
    s = L.Dense(4, activation="relu", name="se_reduce")(s)
    s = L.Dense(8, activation="sigmoid", name="se_expand")(s)
    s = L.Reshape((1, 1, 8), name="se_reshape")(s)
    x = L.Multiply(name="excite")([x, s])
    x = L.MaxPooling2D(2, name="pool")(x)
    return tf.keras.Model(inp, _head(x), name="se_block")


def _hard_swish(x, name: str):
    """x * ReLU6(x + 3) / 6, as keras.applications.MobileNetV3 builds it (Add, ReLU6, Mul by a
    constant, Multiply)."""
    gate = L.ReLU(6.0, name=f"{name}_relu6")(x + 3.0) * (1.0 / 6.0)
    return L.Multiply(name=name)([x, gate])


def mobilenet_v3_block() -> tf.keras.Model:
    """A MobileNetV3 bottleneck: a 3 x 3 stem with hard-swish, an expanding 1 x 1 conv with
    hard-swish, a depthwise 3 x 3 with hard-swish, squeeze-and-excite gated by a hard sigmoid
    (ReLU6(x + 3) / 6), a projecting 1 x 1 conv; the element-wise ops on whole feature maps."""
    inp = tf.keras.Input((16, 16, 3), name="input")
    x = _hard_swish(L.Conv2D(8, 3, padding="same", name="stem")(inp), "stem_hswish")
    x = _hard_swish(L.Conv2D(16, 1, name="expand")(x), "expand_hswish")
    x = _hard_swish(L.DepthwiseConv2D(3, padding="same", name="dw")(x), "dw_hswish")
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(x)
    s = L.Conv2D(8, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(16, 1, name="se_expand")(s)
    s = L.ReLU(6.0, name="se_hsigmoid")(s + 3.0) * (1.0 / 6.0)
    x = L.Multiply(name="se_excite")([x, s])
    x = L.Conv2D(8, 1, name="project")(x)
    x = L.MaxPooling2D(4, name="pool")(x)
    return tf.keras.Model(inp, _head(x), name="mobilenet_v3_block")


def inception_concat() -> tf.keras.Model:
    """Inception-like branches (1x1, 3x3, max-pool + 1x1) joined by Concatenate on channels."""
    inp = tf.keras.Input((8, 8, 4), name="input")
    a = L.Conv2D(8, 1, activation="relu", name="branch_1x1")(inp)
    b = L.Conv2D(8, 3, padding="same", activation="relu", name="branch_3x3")(inp)
    c = L.MaxPooling2D(3, strides=1, padding="same", name="branch_pool")(inp)
    c = L.Conv2D(4, 1, activation="relu", name="branch_pool_1x1")(c)
    x = L.Concatenate(axis=-1, name="concat")([a, b, c])
    x = L.MaxPooling2D(2, name="pool")(x)
    return tf.keras.Model(inp, _head(x), name="inception_concat")


def zeropad_stem() -> tf.keras.Model:
    """ZeroPadding2D then a 5x5 stride-2 'valid' convolution (the classic image stem)."""
    inp = tf.keras.Input((24, 24, 3), name="input")
    x = L.ZeroPadding2D(2, name="pad")(inp)
    x = L.Conv2D(8, 5, strides=2, activation="relu", name="stem")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    return tf.keras.Model(inp, _head(x), name="zeropad_stem")


def imu_conv1d() -> tf.keras.Model:
    """A sensor model on 128 steps x 6 axes: Conv1D, MaxPooling1D, Conv1D, AveragePooling1D,
    GlobalAveragePooling1D, Dense softmax."""
    inp = tf.keras.Input((128, 6), name="input")
    x = L.Conv1D(16, 5, activation="relu", name="conv1")(inp)
    x = L.MaxPooling1D(2, name="maxpool")(x)
    x = L.Conv1D(16, 3, activation="relu", name="conv2")(x)
    x = L.AveragePooling1D(2, name="avgpool")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    out = L.Dense(6, activation="softmax", name="fc")(x)
    return tf.keras.Model(inp, out, name="imu_conv1d")


def dense_rank3() -> tf.keras.Model:
    """Dense on a rank-3 input (applied at every time step: FULLY_CONNECTED on 20 x 16)."""
    inp = tf.keras.Input((20, 16), name="input")
    x = L.Dense(32, activation="relu", name="per_step")(inp)
    return tf.keras.Model(inp, _head(x), name="dense_rank3")


def lstm_small() -> tf.keras.Model:
    """LSTM (16 units) over 24 steps of 8 features, last state -> Dense softmax."""
    inp = tf.keras.Input((24, 8), name="input")
    x = L.LSTM(16, name="lstm")(inp)
    out = L.Dense(4, activation="softmax", name="fc")(x)
    return tf.keras.Model(inp, out, name="lstm_small")


def gru_small() -> tf.keras.Model:
    """GRU (16 units) over 24 steps of 8 features, last state -> Dense softmax."""
    inp = tf.keras.Input((24, 8), name="input")
    x = L.GRU(16, name="gru")(inp)
    out = L.Dense(4, activation="softmax", name="fc")(x)
    return tf.keras.Model(inp, out, name="gru_small")


def activations() -> tf.keras.Model:
    """Dense layers with sigmoid, tanh, LeakyReLU, ReLU6 and a hard-swish built as
    x * ReLU6(x + 3) / 6 (as MobileNetV3 builds it)."""
    inp = tf.keras.Input((32,), name="input")
    x = L.Dense(16, activation="sigmoid", name="fc_sigmoid")(inp)
    x = L.Dense(16, activation="tanh", name="fc_tanh")(x)
    x = L.Dense(16, name="fc_leaky")(x)
    x = L.LeakyReLU(0.1, name="leaky_relu")(x)
    x = L.Dense(16, name="fc_relu6")(x)
    x = L.ReLU(6.0, name="relu6")(x)
    x = L.Dense(16, name="fc_hswish")(x)
    gate = L.ReLU(6.0, name="hswish_relu6")(x + 3.0) * (1.0 / 6.0)
    x = L.Multiply(name="hswish")([x, gate])
    out = L.Dense(4, activation="softmax", name="fc")(x)
    return tf.keras.Model(inp, out, name="activations")


def unet_head() -> tf.keras.Model:
    """A tiny U-Net-like head: SeparableConv2D, MaxPool, SeparableConv2D, UpSampling2D
    (nearest), Concatenate with the skip, SeparableConv2D, 1x1 conv, sigmoid map."""
    inp = tf.keras.Input((16, 16, 4), name="input")
    e = L.SeparableConv2D(8, 3, padding="same", activation="relu", name="enc")(inp)
    x = L.MaxPooling2D(2, name="down")(e)
    x = L.SeparableConv2D(16, 3, padding="same", activation="relu", name="mid")(x)
    x = L.UpSampling2D(2, interpolation="nearest", name="up")(x)
    x = L.Concatenate(name="skip")([x, e])
    x = L.SeparableConv2D(8, 3, padding="same", activation="relu", name="dec")(x)
    out = L.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return tf.keras.Model(inp, out, name="unet_head")


def depthwise_multiplier() -> tf.keras.Model:
    """DepthwiseConv2D with depth_multiplier 2, then a pointwise conv."""
    inp = tf.keras.Input((16, 16, 4), name="input")
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu",
                          name="dw_x2")(inp)
    x = L.Conv2D(8, 1, activation="relu", name="pw")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    return tf.keras.Model(inp, _head(x), name="depthwise_multiplier")


def residual_bn() -> tf.keras.Model:
    """A residual block with BatchNormalization: Conv (no bias) + BN + ReLU, Conv + BN,
    Add with the block's input, ReLU."""
    inp = tf.keras.Input((10, 10, 8), name="input")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv_a")(inp)
    x = L.BatchNormalization(name="bn_a")(x)
    x = L.ReLU(name="relu_a")(x)
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv_b")(x)
    x = L.BatchNormalization(name="bn_b")(x)
    x = L.Add(name="add")([inp, x])
    x = L.ReLU(name="relu")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    return tf.keras.Model(inp, _head(x), name="residual_bn")


def broadcast_mul_add() -> tf.keras.Model:
    """Mul and Add that broadcast: a feature map times a per-channel constant plus a
    per-channel constant, then times a scalar; and a Multiply with a (1, 1, C) vector that
    the model computes (its own pooled features)."""
    rng = np.random.default_rng(7)
    scale = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    shift = rng.normal(0.0, 0.5, 8).astype(np.float32)
    inp = tf.keras.Input((8, 8, 8), name="input")
    x = L.Conv2D(8, 1, name="conv")(inp)
    x = (x * scale + shift) * 0.5
    v = L.AveragePooling2D(8, name="pool_all")(x)              # (1, 1, 8)
    x = L.Multiply(name="mul_vector")([x, v])
    x = L.Add(name="add_vector")([x, v])
    x = L.MaxPooling2D(2, name="pool")(x)
    return tf.keras.Model(inp, _head(x), name="broadcast_mul_add")


def tcn_dilated() -> tf.keras.Model:
    """A temporal convolutional network on an IMU-like window: causal Conv1D with dilations 1, 2,
    4 and 8 and residual Adds, global max pooling, softmax."""
    inp = tf.keras.Input((128, 6), name="input")
    x = L.Conv1D(8, 1, name="proj")(inp)
    for d in (1, 2, 4, 8):
        y = L.Conv1D(8, 3, padding="causal", dilation_rate=d, activation="relu",
                     name=f"tcn{d}")(x)
        x = L.Add(name=f"res{d}")([x, y])
    x = L.GlobalMaxPooling1D(name="pool")(x)
    return tf.keras.Model(inp, L.Dense(5, activation="softmax", name="fc")(x), name="tcn_dilated")


def conv_decoder() -> tf.keras.Model:
    """A convolutional auto-encoder: two stride-2 Conv2D down, two stride-2 Conv2DTranspose up
    (learned upsampling), a sigmoid map."""
    inp = tf.keras.Input((32, 32, 1), name="input")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="down1")(inp)
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="down2")(x)
    x = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", name="up1")(x)
    x = L.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid", name="up2")(x)
    return tf.keras.Model(inp, x, name="conv_decoder")


def layernorm_mlp() -> tf.keras.Model:
    """Dense GELU, LayerNormalization, Dense: the feed-forward half of a small transformer."""
    inp = tf.keras.Input((64,), name="input")
    x = L.Dense(64, activation="gelu", name="fc1")(inp)
    x = L.LayerNormalization(name="norm")(x)
    x = L.Dense(32, activation="relu", name="fc2")(x)
    return tf.keras.Model(inp, L.Dense(4, activation="softmax", name="fc")(x),
                          name="layernorm_mlp")


_ENTRIES = [
    ZooModel("mlperf_ds_cnn", "MLPerf Tiny keyword spotting DS-CNN (12 classes)", (49, 10, 1),
             ("conv2d", "depthwise_conv2d", "batchnorm", "relu", "avgpool", "dense", "softmax"),
             mlperf_ds_cnn,
             reference=Reference(2_657_000, 22_604, _MLTK.format("keyword_spotting"))),
    ZooModel("mlperf_mobilenet_vww", "MLPerf Tiny visual wake words MobileNetV1 0.25",
             (96, 96, 3),
             ("conv2d", "depthwise_conv2d", "batchnorm", "relu", "avgpool", "dense", "softmax"),
             mlperf_mobilenet_vww,
             reference=Reference(7_490_000, 210_850, _MLTK.format("visual_wake_words"))),
    ZooModel("mlperf_resnet8", "MLPerf Tiny image classification ResNet-8 (CIFAR-10)",
             (32, 32, 3),
             ("conv2d", "batchnorm", "relu", "add", "projection_shortcut", "avgpool", "dense",
              "softmax"),
             mlperf_resnet8,
             reference=Reference(12_502_000, 77_706, _MLTK.format("image_classification"))),
    ZooModel("mlperf_fc_autoencoder", "MLPerf Tiny anomaly detection FC auto-encoder", (640,),
             ("dense", "batchnorm", "relu"), mlperf_fc_autoencoder, classifier=False,
             reference=Reference(264_192, 265_864, _MLTK.format("anomaly_detection"))),
    ZooModel("keras_mobilenet_025", "keras.applications MobileNet alpha 0.25, 96x96, 2 classes",
             (96, 96, 3),
             ("conv2d", "depthwise_conv2d", "batchnorm", "relu6", "zeropadding2d",
              "global_avgpool", "reshape", "softmax"), keras_mobilenet_025),
    ZooModel("keras_mobilenet_v2_035",
             "keras.applications MobileNetV2 alpha 0.35, 96x96, 2 classes", (96, 96, 3),
             ("conv2d", "depthwise_conv2d", "batchnorm", "relu6", "zeropadding2d", "add",
              "global_avgpool", "dense", "softmax"), keras_mobilenet_v2_035),
    ZooModel("se_block", "squeeze-and-excite block", (12, 12, 4),
             ("global_avgpool", "dense", "sigmoid", "reshape", "multiply_broadcast"), se_block),
    ZooModel("mobilenet_v3_block", "MobileNetV3 bottleneck: hard-swish, hard-sigmoid SE",
             (16, 16, 3), ("hard_swish", "hard_sigmoid", "multiply", "multiply_broadcast",
                           "depthwise_conv2d"), mobilenet_v3_block),
    ZooModel("inception_concat", "inception-like branches joined by Concatenate", (8, 8, 4),
             ("concatenate", "maxpool_same"), inception_concat),
    ZooModel("zeropad_stem", "ZeroPadding2D + 5x5 stride-2 stem", (24, 24, 3),
             ("zeropadding2d", "conv2d_5x5_stride2"), zeropad_stem),
    ZooModel("imu_conv1d", "IMU-like 1-D conv net (128 x 6)", (128, 6),
             ("conv1d", "maxpool1d", "avgpool1d", "global_avgpool1d"), imu_conv1d),
    ZooModel("dense_rank3", "time-distributed Dense on a rank-3 input", (20, 16),
             ("dense_rank3",), dense_rank3),
    ZooModel("lstm_small", "LSTM 16 units over 24 steps", (24, 8), ("lstm",), lstm_small),
    ZooModel("gru_small", "GRU 16 units over 24 steps", (24, 8), ("gru",), gru_small),
    ZooModel("activations", "sigmoid, tanh, LeakyReLU, ReLU6, hard-swish", (32,),
             ("sigmoid", "tanh", "leaky_relu", "relu6", "hard_swish"), activations),
    ZooModel("unet_head", "tiny U-Net-like segmentation head", (16, 16, 4),
             ("separable_conv2d", "upsampling2d_nearest", "concatenate", "sigmoid"), unet_head,
             classifier=False),
    ZooModel("depthwise_multiplier", "DepthwiseConv2D with depth_multiplier 2", (16, 16, 4),
             ("depthwise_conv2d_multiplier",), depthwise_multiplier),
    ZooModel("residual_bn", "residual block with BatchNorm", (10, 10, 8),
             ("batchnorm", "add", "conv2d_no_bias"), residual_bn),
    ZooModel("broadcast_mul_add", "Mul/Add broadcasting against constants and vectors",
             (8, 8, 8), ("multiply_broadcast", "add_broadcast", "mul_constant", "add_constant"),
             broadcast_mul_add),
    ZooModel("tcn_dilated", "TCN: causal dilated Conv1D (1, 2, 4, 8), residual Adds (128 x 6)",
             (128, 6), ("conv1d_dilated", "causal_padding", "add", "global_maxpool1d"),
             tcn_dilated),
    ZooModel("conv_decoder", "convolutional auto-encoder with Conv2DTranspose (32 x 32 x 1)",
             (32, 32, 1), ("conv2d_stride2", "conv2d_transpose", "sigmoid"), conv_decoder,
             classifier=False),
    ZooModel("layernorm_mlp", "Dense GELU, LayerNormalization, Dense", (64,),
             ("gelu", "layer_normalization", "dense", "softmax"), layernorm_mlp),
]
MODELS: dict[str, ZooModel] = {m.name: m for m in _ENTRIES}


def get(name: str) -> ZooModel:
    """The zoo entry ``name``; a KeyError names the known models."""
    if name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


# ---------------------------------------------------------------------------------------------
# inputs, calibration, figures
# ---------------------------------------------------------------------------------------------

def sample_inputs(name: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` deterministic random inputs of the model's input shape: standard normal, float32."""
    shape = get(name).input_shape
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def build(name: str, seed: int = 0, calibrated: bool = True) -> tf.keras.Model:
    """A fresh model ``name`` with random weights drawn from ``seed`` and, unless told
    otherwise, calibrated on :data:`CALIBRATION_SAMPLES` sample inputs (:func:`calibrate`).
    Like tf.keras.utils.set_random_seed, it seeds Python's, NumPy's and TensorFlow's global
    generators."""
    entry = get(name)
    tf.keras.utils.set_random_seed(seed)
    model = entry.builder()
    if calibrated:
        x = sample_inputs(name, CALIBRATION_SAMPLES, seed + CALIBRATION_SEED_OFFSET)
        calibrate(model, x, seed)
    return model


def _output_kernel(layer: tf.keras.layers.Layer) -> tf.Variable | None:
    """The weight whose last axis indexes the layer's output channels, and the bias; None when
    the layer is not a convolution or dense layer with a bias."""
    if getattr(layer, "bias", None) is None:
        return None
    for attr in ("pointwise_kernel", "depthwise_kernel", "kernel"):
        kernel = getattr(layer, attr, None)
        if kernel is not None:
            return kernel
    return None


def _normalise(layer: tf.keras.layers.Layer, args: tuple, kwargs: dict) -> None:
    """Rescale the kernel and bias so that the layer's output before its activation has zero
    mean and unit standard deviation per channel over this batch."""
    kernel = _output_kernel(layer)
    activation = layer.activation
    layer.activation = tf.keras.activations.linear
    try:
        y = np.asarray(layer(*args, **kwargs))
    finally:
        layer.activation = activation
    y = y.reshape(-1, y.shape[-1])
    mean, std = y.mean(axis=0), y.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)
    k = kernel.numpy()
    if layer.__class__.__name__.startswith("DepthwiseConv") and kernel is layer.depthwise_kernel:
        k = k / std.reshape(k.shape[-2], k.shape[-1])   # output channel c * multiplier + m
    elif layer.__class__.__name__.endswith("Transpose"):
        k = k / std[:, None]                            # [kh][kw][out][in]
    else:
        k = k / std
    kernel.assign(k)
    layer.bias.assign((layer.bias.numpy() - mean) / std)


def _set_batchnorm(layer: tf.keras.layers.BatchNormalization, x, rng: np.random.Generator
                   ) -> None:
    """Moving statistics = the batch statistics of the layer's input; gamma and beta random
    (so that folding BatchNorm into a convolution is not the identity)."""
    x = np.asarray(x)
    axes = tuple(range(x.ndim - 1))
    c = x.shape[-1]
    layer.moving_mean.assign(x.mean(axis=axes))
    layer.moving_variance.assign(x.var(axis=axes))
    if layer.gamma is not None:
        layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
    if layer.beta is not None:
        layer.beta.assign(rng.normal(0.0, 0.1, c).astype(np.float32))


def calibrate(model: tf.keras.Model, x: np.ndarray, seed: int = 0) -> tf.keras.Model:
    """Set weights so that activations stay in range on inputs like ``x``, layer by layer in
    graph order (each layer sees the already calibrated layers before it):

    * BatchNormalization: moving mean and variance = the batch statistics of its input, random
      gamma in [0.5, 1.5] and beta ~ N(0, 0.1);
    * a convolution or dense layer with a bias: kernel and bias rescaled so that its output
      before the activation has zero mean and unit spread per channel (a classifier's logits
      are then centred per class, so the top class changes from input to input).

    Recurrent layers keep their initialisers (their gates are bounded). ``model`` must be a
    functional or Sequential model with one input; it is changed in place and returned.
    """
    if not getattr(model, "_is_graph_network", False) or len(model.inputs) != 1:
        raise TypeError(f"calibrate() takes a functional or Sequential model with one input, "
                        f"not {type(model).__name__}")
    rng = np.random.default_rng(seed)
    values: dict[str, list] = {}
    kt_id = str(id(model.inputs[0]))
    values[kt_id] = [tf.constant(x, tf.float32)] * model._tensor_usage_count[kt_id]
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            args, kwargs = node.map_arguments(values)
            layer = node.layer
            if isinstance(layer, L.BatchNormalization):
                _set_batchnorm(layer, args[0], rng)
            elif _output_kernel(layer) is not None:
                _normalise(layer, args, kwargs)
            outputs = layer(*args, **kwargs)
            for kt_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                values[kt_id] = [y] * model._tensor_usage_count[kt_id]
    return model


def macs(model: tf.keras.Model) -> int:
    """Multiply-accumulates of one inference (evaluate.count_macs: convolutions, dense layers,
    LSTM/GRU gates over the sequence)."""
    return count_macs(model)


def folded_params(model: tf.keras.Model) -> int:
    """Parameters once every BatchNormalization is folded into the layer before it: all
    parameters less the BatchNorm ones, plus a bias for a layer that had none."""
    total = model.count_params()
    for layer in model.layers:
        if not isinstance(layer, L.BatchNormalization):
            continue
        channels = int(layer.moving_mean.shape[-1])
        total -= layer.count_params()
        producer = layer._inbound_nodes[0].inbound_layers
        if getattr(producer, "bias", "absent") is None:   # conv/dense with use_bias=False
            total += channels
    return int(total)


def output_spread(model: tf.keras.Model, x: np.ndarray) -> tuple[float, int]:
    """How much the outputs differ across the inputs ``x``: the smallest, over the outputs,
    of (standard deviation across inputs) / (mean magnitude), and the number of distinct
    top classes (argmax over the last axis of each input's flattened output)."""
    y = np.asarray(model(x, training=False)).reshape(len(x), -1)
    rel = y.std(axis=0) / np.maximum(np.abs(y).mean(axis=0), 1e-12)
    return float(rel.min()), int(len(np.unique(y.argmax(axis=1))))


__all__ = ["MODELS", "Reference", "ZooModel", "build", "calibrate", "folded_params", "get",
           "macs", "output_spread", "sample_inputs"]
