"""The `Dataset` record that every loader returns."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A preprocessed train/test problem with its reference models.

    Attributes:
        name: registry name, e.g. ``"fashion_mnist"``.
        x_train, y_train, x_test, y_test: NumPy arrays. Labels are int32
            class ids for classification, float32 targets for regression.
        task: ``"classification"`` or ``"regression"``.
        num_classes: number of classes (1 for regression).
        source: where the arrays came from (a path, the Keras cache, sklearn,
            generated).
        info: what was loaded and how it was preprocessed.
        loss, metrics, batch_size, optimizer, learning_rate, target_metric:
            recommended benchmark defaults.
        class_names: label names, when the source has them.
        extras: dataset-specific values (e.g. Sentiment140's vocabulary).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
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
        return tuple(self.x_train.shape[1:])

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

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, task={self.task!r}, "
            f"x_train={self.x_train.shape}, x_test={self.x_test.shape}, "
            f"num_classes={self.num_classes}, source={self.source!r})"
        )
