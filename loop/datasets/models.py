"""Reference Keras models for the datasets in `loop.datasets`.

Every builder takes ``input_shape`` and ``num_classes`` (plus its own
keyword options) and returns a fresh, uncompiled Keras 3 model with
``weights=None``. Classifiers end in a softmax, so the matching loss is
``"sparse_categorical_crossentropy"``; the regression model ends in one
linear unit (loss ``"mse"``).
"""

from __future__ import annotations

import keras
from keras import layers


def mnist_cnn(input_shape=(28, 28, 1), num_classes=10, *, name="mnist_cnn"):
    """The MNIST CNN of the original batch-selection experiments.

    Two 2x2 ReLU convolutions (64, then 32 filters), each followed by 2x2
    max-pooling and dropout 0.3; a 256-unit ReLU layer, dropout 0.5, and a
    softmax layer.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(64, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.3),
            layers.Conv2D(32, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name=name,
    )


def fashion_mnist_cnn(input_shape=(28, 28, 1), num_classes=10, *,
                      width=1.0, name="fashion_mnist_cnn"):
    """The Fashion-MNIST CNN of the original batch-selection experiments.

    Three 2x2 convolutions (64, 128, 64 filters) with PReLU, each followed by
    2x2 max-pooling (``padding="same"`` keeps 28 -> 14 -> 7 -> 4); a 256-unit
    PReLU layer with dropout 0.5, and a 10-way softmax.

    Args:
        width: multiplies every layer's filters and units (rounded, at least
            1); 1.0 is the original model, 0.5 has half the filters.

    Raises:
        ValueError: ``width`` not a positive number.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width={width!r} must be a positive number (1.0: the original model)")

    def scaled(units):
        return max(1, int(round(units * width)))

    model_layers = [keras.Input(input_shape)]
    for filters in (64, 128, 64):
        model_layers += [
            layers.Conv2D(scaled(filters), 2, padding="same"),
            layers.PReLU(shared_axes=[1, 2]),
            layers.MaxPooling2D(2, padding="same"),
        ]
    model_layers += [
        layers.Flatten(),
        layers.Dense(scaled(256)),
        layers.PReLU(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
    return keras.Sequential(model_layers, name=name)


@keras.saving.register_keras_serializable(package="loop")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' ``BatchNormalization`` computed with TensorFlow's fused kernel: the same layer, faster.

    Keras 3's layer normalizes with separate ops (``moments``, then
    ``batch_normalization``) and differentiates through each; TensorFlow's
    ``FusedBatchNormV3`` does the forward and backward passes in one kernel
    each.  Same weights, same arithmetic in float32 (16-bit inputs are cast
    up, as Keras does), same moving-average update: the kernel returns the
    batch variance with Bessel's correction, which is scaled back to the
    biased variance Keras' update uses.  It takes over only what the kernel
    does (4-D inputs, the channel axis last, no mask, no renormalization,
    ``center`` and ``scale`` on, the TensorFlow backend); anything else runs
    Keras' own code.

    Measured on the 2-core CPU (docs/performance.md): the CIFAR ResNet-20
    train step took 0.677 of the time with it (per-layer gradients agree with
    a float64 batch norm to 4.3e-7 relative, moving statistics to 4e-6).
    """

    def _fusable(self, inputs, mask):
        axis = self.axis if isinstance(self.axis, int) else (self.axis[0] if len(self.axis) == 1 else None)
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm and self.scale
                and self.center and len(inputs.shape) == 4 and axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, tf.float32)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon,
                                                                 data_format="NHWC", is_training=True)
            n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)  # Bessel's correction undone
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + tf.cast(mean, self.moving_mean.dtype) *
                                    (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum +
                                        tf.cast(variance, self.moving_variance.dtype) * (1.0 - momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)
        return tf.cast(y, self.compute_dtype)


def _conv_bn_relu(x, filters, strides=1, *, relu=True, weight_decay=1e-4):
    x = layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.l2(weight_decay) if weight_decay else None,
    )(x)
    x = FusedBatchNormalization()(x)
    return layers.ReLU()(x) if relu else x


def _basic_block(x, filters, strides, weight_decay):
    shortcut = x
    y = _conv_bn_relu(x, filters, strides, weight_decay=weight_decay)
    y = _conv_bn_relu(y, filters, relu=False, weight_decay=weight_decay)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=strides, use_bias=False,
            kernel_initializer="he_normal",
        )(shortcut)
        shortcut = FusedBatchNormalization()(shortcut)
    return layers.ReLU()(layers.Add()([y, shortcut]))


def _cifar_resnet(input_shape, num_classes, stage_filters, blocks_per_stage,
                  weight_decay, name):
    inputs = keras.Input(input_shape)
    x = _conv_bn_relu(inputs, stage_filters[0], weight_decay=weight_decay)
    for stage, filters in enumerate(stage_filters):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, weight_decay)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet20(input_shape=(32, 32, 3), num_classes=10, *, weight_decay=1e-4,
             name="resnet20"):
    """ResNet-20 for CIFAR (He et al. 2016, section 4.2): the CPU-sized default.

    3x3 stem with 16 filters, three stages of three basic blocks (16, 32, 64
    filters; stride 2 at the start of stages 2 and 3), global average pooling
    and a softmax. Shortcuts that change shape use a 1x1 projection (option B)
    rather than zero-padding. About 0.27M parameters. Batch normalization
    runs TensorFlow's fused kernel (:class:`FusedBatchNormalization`).
    """
    return _cifar_resnet(input_shape, num_classes, (16, 32, 64), 3,
                         weight_decay, name)


def resnet18(input_shape=(32, 32, 3), num_classes=10, *, weight_decay=5e-4,
             name="resnet18"):
    """ResNet-18 in CIFAR form, as in the original CIFAR experiments.

    The ImageNet ResNet-18 with its 7x7 stride-2 stem and max-pool replaced by
    one 3x3 stride-1 convolution: four stages of two basic blocks (64, 128,
    256, 512 filters). About 11M parameters: for GPU runs.
    """
    return _cifar_resnet(input_shape, num_classes, (64, 128, 256, 512), 2,
                         weight_decay, name)


def simple_cnn(input_shape=(32, 32, 3), num_classes=10, *, name="simple_cnn"):
    """The seed lab's simple CIFAR CNN (the classic Keras cifar10_cnn example).

    Two blocks of two 3x3 ReLU convolutions (32, then 64 filters) with 2x2
    max-pooling and dropout 0.25; a 512-unit ReLU layer, dropout 0.5, softmax.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name=name,
    )


def _application(constructor, **fixed):
    def build(input_shape=(32, 32, 3), num_classes=10, **kwargs):
        return constructor(
            weights=None, input_shape=tuple(input_shape), classes=num_classes,
            classifier_activation="softmax", **{**fixed, **kwargs},
        )

    build.__doc__ = (
        f"`keras.applications.{constructor.__name__}` with weights=None, as in "
        "the original large-model CIFAR experiments (trained from scratch)."
    )
    build.__name__ = constructor.__name__.lower()
    return build


def _applications():
    apps = keras.applications
    return {
        "resnet50": _application(apps.ResNet50),
        # EfficientNetB4 always rescales its input from [0, 255]; feed it
        # unstandardized pixels or accept the shift.
        "efficientnet_b4": _application(apps.EfficientNetB4),
        "efficientnet_v2s": _application(
            apps.EfficientNetV2S, include_preprocessing=False),
        "mobilenet_v3_small": _application(
            apps.MobileNetV3Small, include_preprocessing=False),
    }


def sentiment_lstm(input_shape=(48,), num_classes=2, *, vocab_size=20_000,
                   embedding_dim=64, units=64, dropout=0.3,
                   name="sentiment_lstm"):
    """Embedding + LSTM tweet classifier of the original Sentiment140 runs.

    Token ids (0 = padding, masked) -> 64-d embedding -> LSTM(64) ->
    dropout -> softmax over {negative, positive}.
    """
    return keras.Sequential(
        [
            keras.Input(input_shape, dtype="int32"),
            layers.Embedding(vocab_size, embedding_dim, mask_zero=True),
            layers.LSTM(units),
            layers.Dropout(dropout),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name=name,
    )


def mlp(input_shape, num_classes, *, hidden=(64, 64), dropout=0.0, name="mlp"):
    """Small feed-forward classifier used for the tabular experiments.

    Reproduces the music-genre, wine, iris and spirals runs: ReLU hidden
    layers (default 64, 64), optional dropout, softmax output.
    """
    model_layers = [keras.Input(input_shape)]
    for units in hidden:
        model_layers.append(layers.Dense(units, activation="relu"))
        if dropout:
            model_layers.append(layers.Dropout(dropout))
    model_layers.append(layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(model_layers, name=name)


def mlp_regressor(input_shape, num_classes=1, *, hidden=(64, 64),
                  name="mlp_regressor"):
    """Feed-forward regressor of the Boston housing experiment.

    Two 64-unit ReLU layers and one linear output (the classic Keras
    Boston-housing model); num_classes is ignored (always one output).
    """
    model_layers = [keras.Input(input_shape)]
    model_layers += [layers.Dense(units, activation="relu") for units in hidden]
    model_layers.append(layers.Dense(1))
    return keras.Sequential(model_layers, name=name)


def cifar_models() -> dict:
    """The CIFAR model registry; resnet20 first (the benchmark default)."""
    return {
        "resnet20": resnet20,
        "resnet18": resnet18,
        "simple_cnn": simple_cnn,
        **_applications(),
    }
