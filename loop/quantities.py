"""The forward pass that also computes the per-sample quantities a selector declares in ``needs``.

Who owns what: :class:`Forward` owns one forward pass of the model on a batch
of rows, as the train step, its in-step filter's candidate pass and the
scoring pass run it: the float32 outputs, the per-sample losses and, where the
selector declared them (:func:`loop.protocol.needs_of`), the last layer's
inputs (``"features"``) and the loss gradient at the last layer's
pre-activation (``"last_layer_gradients"``).  Without those two it is exactly
``model(x)`` followed by the loss, so a selector that declares nothing more
trains as before, bit for bit.

With them, the model is split at its last layer once (:func:`split_last_layer`):
a body model ``x -> h`` that shares every layer and weight but the last, and
the head, a ``Dense`` layer (optionally followed by an ``Activation`` or
``Softmax`` layer) computed here in float32 as ``z = h @ kernel + bias`` and
``y_pred = activation(z)``, which is what the ``Dense`` layer computes (in
float32 also under a mixed-precision policy).  The gradient of the summed
per-sample losses with respect to ``z`` is each row's own ``dloss_i / dz_i``
(rows are independent in a forward pass), e.g. ``softmax(z) - onehot(y)`` for
softmax cross-entropy: CORDS' ``l0_grads`` (``torch.autograd.grad(loss.sum(),
out)`` on the logits) and DivBS' ``grad_out``.
"""

import keras
import tensorflow as tf

from loop.objective import float32

#: The quantities that need the model split at its last layer.
SPLIT = ("features", "last_layer_gradients")

_ACTIVATION_LAYERS = (keras.layers.Activation, keras.layers.Softmax)


def split_last_layer(model):
    """Splits a model into ``(body, dense, after)``: ``model(x) == after(dense(body(x)))``.

    ``body`` is a ``keras.Model`` from the model's inputs to the ``Dense``
    layer's input (sharing the layers and weights), ``dense`` the last
    ``Dense`` layer, ``after`` the ``Activation`` or ``Softmax`` layer that
    follows it, or None.

    Raises:
        ValueError: the model is not a Sequential or functional model with one
            output, or it does not end in a ``Dense`` layer (optionally followed
            by an activation layer that the ``Dense`` layer does not already
            have); naming the layer and what to change.
    """
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ValueError(f"the selector needs the last layer's features or gradients, which the loop reads from a "
                         f"Sequential or functional Keras model; {type(model).__name__} has no symbolic "
                         "inputs and outputs (a subclassed model, or a Sequential model without keras.Input): build "
                         "it with keras.Input(shape=...)")
    if len(outputs) != 1:
        raise ValueError(f"the selector needs the last layer's features or gradients of a model with one output; "
                         f"{model.name!r} has {len(outputs)} outputs")
    layers = model.layers
    last, after = layers[-1], None
    if isinstance(last, _ACTIVATION_LAYERS) and len(layers) > 1:
        last, after = layers[-2], last
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(f"the selector needs the last layer's features or gradients, and {model.name!r} ends in a "
                         f"{type(last).__name__} layer ({last.name!r}); the loop reads them from a final Dense layer "
                         "(optionally followed by an Activation or Softmax layer)")
    if after is not None and last.activation not in (None, keras.activations.linear):
        raise ValueError(f"{model.name!r} ends in Dense {last.name!r} with activation "
                         f"{getattr(last.activation, '__name__', last.activation)!r} followed by {after.name!r}; "
                         "give the Dense layer no activation, or drop the activation layer")
    if getattr(last, "lora_enabled", False) or getattr(last, "quantization_mode", None):
        raise ValueError(f"Dense {last.name!r} is LoRA-enabled or quantized; the loop computes its features and "
                         "gradients from a plain kernel and bias")
    head = after if after is not None else last
    if head.output is not outputs[0]:
        raise ValueError(f"the last layer of {model.name!r} ({head.name!r}) does not give the model's output; the "
                         "loop splits the model at a final Dense layer whose output is the model's")
    body_inputs = inputs[0] if len(inputs) == 1 else model.input  # the structure the model is called with
    return keras.Model(body_inputs, last.input, name=f"{model.name}_features"), last, after


def check_distributable(selector, keep, needs):
    """Raises ``ValueError`` for an in-step filter that needs features or gradients under a ``tf.distribute``
    strategy: the distributed step (:mod:`loop.distribute`) does not compute them yet."""
    from loop.protocol import describe

    missing = [name for name in needs if name in SPLIT]
    if keep is not None and missing:
        raise ValueError(f"selector {describe(selector)} is an in-step filter that needs {', '.join(missing)} of its "
                         "candidates, which the distributed step does not compute yet; train it without a strategy "
                         "(its scoring pass, state.quantities, works under one)")


class Forward:
    """One forward pass: ``forward(x, y, training) -> (y_pred, losses, quantities)``.

    ``y_pred`` is float32, ``losses`` the per-sample losses ``[n]`` and
    ``quantities`` a dict with ``"features"`` and ``"last_layer_gradients"``
    where ``needs`` declares them (float32, no gradient).  Gradients of the
    loss with respect to the model's weights flow through ``y_pred`` and
    ``losses`` as through ``model(x)``.

    Args:
        model: the Keras model.
        loss_fn: ``fn(y_true, y_pred) -> [n]`` per-sample losses.
        needs: the declared quantities (:func:`loop.protocol.needs_of`).
    """

    def __init__(self, model, loss_fn, needs=("losses",)):
        self.model, self.loss_fn = model, loss_fn
        self.needs = tuple(needs)
        self.split = any(name in self.needs for name in SPLIT)
        self.body = self.dense = self.after = None
        if self.split:
            self.body, self.dense, self.after = split_last_layer(model)

    def __call__(self, x, y, training):
        if not self.split:
            y_pred = float32(self.model(x, training=training))
            return y_pred, self.loss_fn(y, y_pred), {}
        features = tf.cast(self.body(x, training=training), tf.float32)
        kernel = tf.cast(self.dense.kernel, tf.float32)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            z = keras.ops.matmul(features, kernel)
            if self.dense.bias is not None:
                z = z + tf.cast(self.dense.bias, tf.float32)
            tape.watch(z)
            y_pred = self.after(z) if self.after is not None else self.dense.activation(z)
            y_pred = float32(y_pred)
            losses = self.loss_fn(y, y_pred)
        quantities = {}
        if "features" in self.needs:
            quantities["features"] = tf.stop_gradient(features)
        if "last_layer_gradients" in self.needs:
            quantities["last_layer_gradients"] = tf.stop_gradient(tape.gradient(losses, z))
        return y_pred, losses, quantities


__all__ = ["Forward", "SPLIT", "check_distributable", "split_last_layer"]
