"""What a benchmark trains: a :class:`Workload` (the task, fixed by the benchmark) apart from the
:class:`Hyperparameters` (the submission's choices, which a search may vary).

As AlgoPerf's ``spec.py`` keeps a workload (data, model, target, evaluation) apart from a submission's
hyper-parameters, and scikit-learn's estimators keep parameters apart from fitted state:

* a :class:`Workload` holds the dataset and its variant (label noise, another model width), the subsets, the model,
  the validation split, the target, the epoch cap and how often to evaluate;
* :class:`Hyperparameters` hold the peak learning rate, the schedule, its warm-up and horizon, and the batch size;
* which selectors run on which workload is the suite's business (:class:`loop.bench.suites.Suite`).

A trial's identity (:func:`loop.bench.records.identity`) is both configs whole, so a new protocol option is one
field here and one argument where it is used; stored results of older layouts are read with today's defaults
filled in (:mod:`loop.bench.records`).  Nothing here imports TensorFlow.
"""

import dataclasses

#: What a workload's ``val_*`` columns read: the test set (the older suites) or a split of the training set.
VALIDATIONS = ("test", "split")

#: A workload's clock: what its evaluations, schedules and budget are measured in.  ``"epochs"`` (the older
#: suites): each method is evaluated once per loop epoch and decays over its own step budget.  ``"seconds"`` (the
#: one-clock protocol): every method is evaluated on one grid of training-clock seconds, decays over training
#: seconds, and trains within one time budget (:mod:`loop.bench.calibration` converts Shuffle epochs to seconds).
CLOCKS = ("epochs", "seconds")

#: The learning-rate schedule shapes (``loop.schedules.SHAPES``, repeated here so that the command line's help need
#: not import Keras; a test keeps the two equal).
SCHEDULE_SHAPES = ("constant", "cosine", "linear")


def _positive_int(owner, name, value, optional=True):
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer{' or None' if optional else ''}, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Workload:
    """A task every method of a comparison trains on alike.

    Attributes:
        dataset: a ``loop.datasets`` name.
        epochs: the epoch cap of every trial (a selector whose epochs are shorter by design gets its equivalent,
            ``schedules.step_budget``).
        n_train: rows of the training set used (a seeded subset shared by every trial); None keeps all.
        n_test: rows of the test set evaluated; None keeps all.
        model: the reference model's name (``Dataset.model_names``); None for the dataset's default.
        model_kwargs: keyword arguments of the reference model's builder (e.g. ``{"width": 0.5}``).
        load_options: keyword options passed to ``loop.datasets.load``.
        validation: what ``val_*`` columns, targets and stops read: ``"test"`` (the older suites) or ``"split"``
            (a fixed, stratified split held out of the training set, ``loop.datasets.validation_split``; the test
            set is then evaluated too, as ``test_*`` columns that choose nothing).
        n_val: the validation split's size (rows or a fraction); None for the dataset's documented size.
        label_noise: the fraction of training labels redrawn uniformly (after the split); needs a ``name``.
        name: what the workload is stored and tabled under, for a variant of a dataset; None: the dataset's name.
        target: a fixed target ``{metric: threshold}`` (or ``{metric: (threshold, "min"|"max")}``); None: the
            tables infer one from Shuffle's runs.
        stop_at_target: end each trial at its first evaluation that meets ``target`` (``epochs`` is then a cap).
        clock: ``"epochs"`` (the older suites: an evaluation per loop epoch, each method's schedule over its own
            step budget, ``epochs`` a cap in the method's own epochs) or ``"seconds"`` (one clock for every method,
            AlgoPerf's and "No Train No Gain"'s rule: the budget is ``epochs`` Shuffle epochs of training-clock
            seconds on the machine that runs the campaign, every method is evaluated at the first chunk boundary
            after each multiple of ``eval_period`` Shuffle epochs of seconds, and its learning rate decays over
            training seconds).
        eval_period: with ``clock="seconds"``, the evaluation period in Shuffle epochs (e.g. 0.4: about 9
            evaluations before Shuffle's target at 3.5 epochs).
    """

    dataset: str
    epochs: int
    n_train: int | None = None
    n_test: int | None = None
    model: str | None = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    load_options: dict = dataclasses.field(default_factory=dict)
    validation: str = "test"
    n_val: int | float | None = None
    label_noise: float = 0.0
    name: str | None = None
    target: dict | None = None
    stop_at_target: bool = False
    clock: str = "epochs"
    eval_period: float | None = None

    def __post_init__(self):
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"a workload's dataset must be a loop.datasets name, got {self.dataset!r}")
        _positive_int(self.dataset, "epochs", self.epochs, optional=False)
        for field in ("n_train", "n_test"):
            _positive_int(self.dataset, field, getattr(self, field))
        if self.target is not None:
            from loop import history

            try:
                history.parse_target(self.target)
            except ValueError as err:
                raise ValueError(f"{self.label}: {err}") from None
        if self.stop_at_target and not self.target:
            raise ValueError(f"{self.label}: stop_at_target=True needs a target, e.g. target={{'val_accuracy': 0.99}}")
        if self.validation not in VALIDATIONS:
            raise ValueError(f"{self.label}: validation={self.validation!r}; choose 'test' (validate on the test "
                             "set, the older suites) or 'split' (a split held out of the training set)")
        if self.n_val is not None and self.validation != "split":
            raise ValueError(f"{self.label}: n_val={self.n_val!r} needs validation='split'")
        if isinstance(self.label_noise, bool) or not isinstance(self.label_noise, (int, float)) or not (
                0.0 <= self.label_noise <= 1.0):
            raise ValueError(f"{self.label}: label_noise={self.label_noise!r} must be a fraction in [0, 1]")
        if self.label_noise and not self.name:
            raise ValueError(f"{self.dataset}: label_noise={self.label_noise!r} makes another workload; give it a "
                             "name, e.g. name='mnist_noisy20', so its trials are stored and tabled apart")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.isidentifier()):
            raise ValueError(f"{self.dataset}: name={self.name!r} must be a name such as 'mnist_noisy20'")
        if self.clock not in CLOCKS:
            raise ValueError(f"{self.label}: clock={self.clock!r}; choose 'epochs' (an evaluation per loop epoch) or "
                             "'seconds' (one evaluation grid and schedule unit for every method)")
        if (self.clock == "seconds") != (self.eval_period is not None):
            raise ValueError(f"{self.label}: eval_period={self.eval_period!r} with clock={self.clock!r}; the "
                             "seconds clock needs an evaluation period in Shuffle epochs (e.g. eval_period=0.4), "
                             "and the epochs clock evaluates once per epoch (leave eval_period out)")
        if self.eval_period is not None and (isinstance(self.eval_period, bool) or not isinstance(
                self.eval_period, (int, float)) or not 0 < self.eval_period <= self.epochs):
            raise ValueError(f"{self.label}: eval_period={self.eval_period!r} must be a positive number of Shuffle "
                             f"epochs, at most the budget's {self.epochs}")

    @property
    def label(self):
        """The name trials are stored and tabled under: ``name``, else ``dataset``."""
        return self.name or self.dataset

    def config(self):
        """Every field, JSON-ready, with ``name`` resolved: the workload's part of a trial's identity."""
        return {**dataclasses.asdict(self), "name": self.label}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Hyperparameters:
    """A submission's choices on a workload: what a search may vary.

    Attributes:
        learning_rate: the peak learning rate; None for the dataset's default.
        batch_size: the nominal batch size; None for the dataset's default.
        schedule: the schedule's shape, ``"constant"``, ``"cosine"`` or ``"linear"`` (:mod:`loop.schedules`).
        warmup: linear warm-up steps as a fraction of the horizon, in [0, 1).
        horizon: the decay horizon as a fraction of the budget, in (0, 1]: of each trial's own step budget
            (:func:`loop.schedules.step_budget` of the epoch cap) on the epochs clock, of the time budget on the
            seconds clock.
    """

    learning_rate: float | None = None
    batch_size: int | None = None
    schedule: str = "constant"
    warmup: float = 0.0
    horizon: float = 1.0

    def __post_init__(self):
        _positive_int("hyper-parameters", "batch_size", self.batch_size)
        if self.learning_rate is not None and (isinstance(self.learning_rate, bool) or not isinstance(
                self.learning_rate, (int, float)) or not self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number or None, got {self.learning_rate!r}")
        if self.schedule not in SCHEDULE_SHAPES:
            raise ValueError(f"schedule {self.schedule!r} is not a schedule shape; choose "
                             f"{', '.join(SCHEDULE_SHAPES)}")
        if not (isinstance(self.horizon, (int, float)) and 0.0 < self.horizon <= 1.0):
            raise ValueError(f"horizon {self.horizon!r} must be a fraction of the step budget in (0, 1]")
        if not (isinstance(self.warmup, (int, float)) and 0.0 <= self.warmup < 1.0):
            raise ValueError(f"warmup {self.warmup!r} must be a fraction of the horizon in [0, 1)")

    def config(self):
        """Every field, JSON-ready: the hyper-parameters' part of a trial's identity."""
        return dataclasses.asdict(self)


#: The :class:`Hyperparameters` fields.
HYPERPARAMETER_FIELDS = tuple(f.name for f in dataclasses.fields(Hyperparameters))
