"""The records `load` returns: `Dataset` (arrays in memory) and `StreamingDataset` (random-access sources).

Both share `Benchmark`, the part that does not depend on how the samples are
held: the task, the reference models and the recommended benchmark settings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Benchmark:
    """What a dataset is and how to benchmark on it, without its samples.

    Attributes:
        name: registry name, e.g. ``"fashion_mnist"``.
        task: ``"classification"`` or ``"regression"``.
        num_classes: number of classes (1 for regression).
        source: where the samples came from (a path, the Keras cache, sklearn,
            generated, a tfds ArrayRecord copy, a memmap cache).
        info: what was loaded and how it was preprocessed.
        models: reference model builders by name.
        default_model: the name in ``models`` that ``model()`` builds.
        loss, metrics, batch_size, optimizer, learning_rate, target_metric:
            recommended benchmark defaults.
        class_names: label names, when the source has them.
        extras: dataset-specific values (e.g. Sentiment140's vocabulary).
    """

    name: str
    task: str
    num_classes: int
    source: str
    info: str
    models: dict[str, Callable[..., Any]]
    default_model: str
    loss: str
    metrics: list[str]
    batch_size: int
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    target_metric: str = "val_accuracy"
    class_names: tuple[str, ...] | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample's inputs (without the batch axis)."""
        raise NotImplementedError

    def model(self, name: str | None = None, **kwargs):
        """A fresh, uncompiled reference Keras model for this dataset.

        Args:
            name: which reference model (see `model_names`); default
                `default_model`.
            **kwargs: passed to the model builder (e.g. ``dropout=0.2``).

        Raises:
            ValueError: name is not one of `model_names`.
        """
        name = self.default_model if name is None else name
        if name not in self.models:
            raise ValueError(
                f"Unknown model {name!r} for dataset {self.name!r}; "
                f"choose one of {sorted(self.models)}."
            )
        builder = self.models[name]
        kwargs = {**self.extras.get("model_kwargs", {}), **kwargs}
        return builder(
            input_shape=self.input_shape, num_classes=self.num_classes, **kwargs
        )

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.models)

    def make_optimizer(self):
        """A fresh Keras optimizer with the recommended learning rate."""
        import keras

        return keras.optimizers.get(
            {"class_name": self.optimizer,
             "config": {"learning_rate": self.learning_rate}}
        )


@dataclasses.dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class Dataset(Benchmark):
    """A preprocessed train/test problem in memory, with its reference models.

    Attributes:
        x_train, y_train, x_test, y_test: NumPy arrays. Labels are int32
            class ids for classification, float32 targets for regression.
        x_val, y_val: the validation split held out of the training set by
            `loop.datasets.validation_split` (then ``x_train`` lacks those
            rows), or None (the default: ``load`` holds nothing out).
        (and every `Benchmark` attribute: name, task, num_classes, source,
        info, models, default_model, loss, metrics, batch_size, optimizer,
        learning_rate, target_metric, class_names, extras)
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, task={self.task!r}, "
            f"x_train={self.x_train.shape}, "
            + (f"x_val={self.x_val.shape}, " if self.x_val is not None else "")
            + f"x_test={self.x_test.shape}, "
            f"num_classes={self.num_classes}, source={self.source!r})"
        )


@dataclasses.dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class StreamingDataset(Benchmark):
    """A train/test problem read by index from random-access sources.

    ``loop.datasets.load(name, streaming=True)`` returns one; train on it as on
    arrays::

        ds = datasets.load("mnist", streaming=True)
        Loop(ds.model(), ...).fit(ds.train, validation_data=ds.test, epochs=5)

    Attributes:
        train, test: `loop.streaming.RandomAccess` sources giving the same
            preprocessed samples (dtype, scaling, shape, int32 labels) as the
            in-memory `Dataset`'s arrays; ``train.labels`` holds every target.
        val: the validation rows held out of ``train`` by
            `loop.datasets.validation_split` (both are index views of the
            original training source), or None.
        streamed_from: ``"tfds"`` (a tfds ArrayRecord copy, decoded per
            record) or ``"memmap"`` (``.npy`` memmaps in the loop cache); see
            `loop.datasets.streaming`.
        (and every `Benchmark` attribute: name, task, num_classes, source,
        info, models, default_model, loss, metrics, batch_size, optimizer,
        learning_rate, target_metric, class_names, extras)
    """

    train: Any
    test: Any
    streamed_from: str
    val: Any = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        spec = self.train.x_spec
        return tuple(spec.shape[1:])

    def __repr__(self) -> str:
        return (
            f"StreamingDataset({self.name!r}, task={self.task!r}, "
            f"train={len(self.train)} x {self.input_shape}, "
            + (f"val={len(self.val)}, " if self.val is not None else "")
            + f"test={len(self.test)}, num_classes={self.num_classes}, "
            f"streamed_from={self.streamed_from!r})"
        )
