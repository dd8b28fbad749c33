"""Named benchmark suites: which datasets, selectors, seeds and budgets a run uses.

A :class:`Budget` fixes what one dataset trains for (epochs, training and test
subset sizes, reference model, batch size, learning rate); a suite is a
:class:`Suite` of budgets plus the selectors and seeds.  The command line
overrides any of them (``--epochs``, ``--n-train``, ``--selectors`` ...).  A budget may also
name a learning-rate schedule (``schedule``, ``warmup``, ``horizon``; :mod:`loop.schedules`), and a suite with
``tune`` > 0 tunes every selector alike (:mod:`loop.bench.tuning`; the ``tuned`` suite).
"""

import dataclasses

#: The selectors of the default suite: the baseline, the order-only baselines
#: of the seed 000 experiment, one of each family of published methods, and
#: RandomDrop, the uniform control that selective backprop must beat.
DEFAULT_SELECTORS = ("shuffle", "freeze", "homogeneous", "heterogeneous", "loss_sorted", "dybat", "infobatch",
                     "selective_backprop", "random_drop", "rho_loss")


#: What a budget's ``val_*`` columns read: the test set (the older suites) or a split of the training set.
VALIDATIONS = ("test", "split")

#: The learning-rate schedule shapes (``loop.schedules.SHAPES``, repeated here so that the command line's help
#: need not import Keras; a test keeps the two equal).
SCHEDULE_SHAPES = ("constant", "cosine", "linear")

#: The schedule fields of :class:`Budget` and their defaults (left out of :meth:`Budget.config` at these values).
_SCHEDULE_FIELDS = {"schedule": "constant", "warmup": 0.0, "horizon": 1.0}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """What one dataset trains for in a suite.

    Attributes:
        dataset: a ``loop.datasets`` name.
        epochs: the fixed epoch budget of every run.
        n_train: rows of the training set used (a seeded subset shared by every
            run); None keeps all.
        n_test: rows of the test set evaluated each epoch; None keeps all.
        model: the reference model's name (``Dataset.model_names``); None for
            the dataset's default.
        batch_size: the nominal batch size; None for the dataset's default.
        learning_rate: None for the dataset's default.
        load_options: keyword options passed to ``loop.datasets.load``.
        target: a fixed target ``{metric: threshold}`` (or ``{metric:
            (threshold, "min"|"max")}``) for the tables, instead of one
            inferred from Shuffle's runs; ``--target`` still overrides it.
        stop_at_target: end each run at its first evaluation that meets
            ``target`` (then ``epochs`` is a cap, and a run that misses
            trains all of it).
        selectors: the suite's selector specs this dataset runs (None: all of
            them); ``--selectors`` on the command line overrides it.  Not part
            of a run's identity (:meth:`config`), so changing the list never
            re-runs stored runs.
        note: why this budget is as it is (e.g. which selectors it leaves out).
        validation: what ``val_*`` columns, targets and ``stop_at_target``
            read.  ``"test"`` (the default, the older suites): the test set.
            ``"split"``: a validation split held out of the training set
            (``loop.datasets.validation_split``, fixed and stratified, the
            dataset's documented size unless ``n_val``); the test set is then
            evaluated at every evaluation too, outside the training clock,
            as ``test_*`` columns that choose nothing.
        n_val: the validation split's size, rows or a fraction of the
            training set; None for the dataset's documented size
            (``loop.datasets.VALIDATION_SIZES``).  Only with
            ``validation="split"``.
        workload: the name the runs are stored and tabled under, for a
            variant of a dataset (label noise, another model width) that is
            a workload of its own; None: the dataset's name.
        label_noise: the fraction of TRAINING labels replaced uniformly at
            random among all classes (``loop.datasets.with_label_noise``,
            seed 0), after the validation split, so validation and test
            labels stay clean; 0 for none.  Needs a ``workload`` name.
        model_kwargs: keyword arguments of the reference model's builder
            (e.g. ``{"width": 0.5}``).

        schedule: the learning-rate schedule's shape, ``"constant"`` (default),
            ``"cosine"`` or ``"linear"`` (see :mod:`loop.schedules`); the peak is
            ``learning_rate``.
        warmup: linear warm-up steps as a fraction of the horizon, in [0, 1).
        horizon: the decay horizon as a fraction of each run's own step budget
            (:func:`loop.schedules.step_budget` of the epoch cap), in (0, 1].

    A field added after the ``full`` suite's runs (``validation`` ...
    ``horizon``) enters a run's identity (:meth:`config`) only when it
    differs from its default, so the runs stored before it stay valid.
    """

    dataset: str
    epochs: int
    n_train: int | None = None
    n_test: int | None = None
    model: str | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    load_options: dict = dataclasses.field(default_factory=dict)
    target: dict | None = None
    stop_at_target: bool = False
    selectors: tuple | None = None
    note: str = ""
    validation: str = "test"
    n_val: int | float | None = None
    workload: str | None = None
    label_noise: float = 0.0
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    schedule: str = "constant"
    warmup: float = 0.0
    horizon: float = 1.0

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs <= 0:
            raise ValueError(f"{self.dataset}: epochs must be a positive integer, got {self.epochs!r}")
        for name in ("n_train", "n_test", "batch_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{self.dataset}: {name} must be a positive integer or None, got {value!r}")
        if self.target is not None:
            from loop import history

            try:
                history.parse_target(self.target)
            except ValueError as err:
                raise ValueError(f"{self.dataset}: {err}") from None
        if any(getattr(self, name) != default for name, default in _SCHEDULE_FIELDS.items()):
            from loop import schedules  # imports Keras: only for a schedule other than the default, so that
                                        # `python -m loop.bench --help` stays free of TensorFlow
            try:
                schedules.check_shape(self.schedule)
                schedules.make_schedule(1.0, self.schedule, 1000, horizon=self.horizon, warmup=self.warmup)
            except ValueError as err:
                raise ValueError(f"{self.dataset}: {err}") from None
        if self.stop_at_target and not self.target:
            raise ValueError(f"{self.dataset}: stop_at_target=True needs a target, e.g. "
                             "target={'val_accuracy': 0.99}")
        if self.validation not in VALIDATIONS:
            raise ValueError(f"{self.name}: validation={self.validation!r}; choose 'test' (validate on the test set, "
                             "the older suites) or 'split' (a split held out of the training set)")
        if self.n_val is not None and self.validation != "split":
            raise ValueError(f"{self.name}: n_val={self.n_val!r} needs validation='split'")
        if isinstance(self.label_noise, bool) or not isinstance(self.label_noise, (int, float)) or not (
                0.0 <= self.label_noise <= 1.0):
            raise ValueError(f"{self.name}: label_noise={self.label_noise!r} must be a fraction in [0, 1]")
        if self.label_noise and not self.workload:
            raise ValueError(f"{self.dataset}: label_noise={self.label_noise!r} makes another workload; give it a "
                             "name, e.g. workload='mnist_noisy20', so its runs are stored and tabled apart")
        if self.workload is not None and (not isinstance(self.workload, str) or not self.workload.isidentifier()):
            raise ValueError(f"{self.dataset}: workload={self.workload!r} must be a name such as 'mnist_noisy20'")

    @property
    def name(self):
        """The name runs are stored and tabled under: ``workload``, else ``dataset``."""
        return self.workload or self.dataset

    def config(self):
        """The fields that define a run's training, as a JSON-ready dict (a run's identity).

        The fields added after the ``full`` suite's runs are left out while at
        their defaults, so a budget that does not use them keeps its identity.
        """
        config = dataclasses.asdict(self)
        del config["selectors"], config["note"]
        for name, default in {**_LATER_DEFAULTS, **_SCHEDULE_FIELDS}.items():
            if config[name] == default:
                del config[name]
        return config


#: Budget fields added after the ``full`` suite's runs, with the defaults that keep them out of a run's identity.
_LATER_DEFAULTS = {"validation": "test", "n_val": None, "workload": None, "label_noise": 0.0, "model_kwargs": {}}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Suite:
    """Datasets with their budgets, selectors and the number of seeds.

    ``tune`` > 0 makes it a tuned suite (:mod:`loop.bench.tuning`): every
    selector gets ``tune`` quasirandom trials per study, and ``seeds`` is the
    number of studies.
    """

    name: str
    budgets: tuple
    selectors: tuple = DEFAULT_SELECTORS
    seeds: int = 3
    description: str = ""
    tune: int = 0


DEFAULT = Suite(
    name="default",
    description="offline, a few minutes on 2 CPU cores: generated spirals and scikit-learn's iris and wine",
    budgets=(
        Budget(dataset="spirals", epochs=25),
        Budget(dataset="iris", epochs=40),
        Budget(dataset="wine", epochs=20),
    ),
)

SEEDS = Suite(
    name="seeds",
    description="every dataset of the original experiments on real data, sized for ~25 minutes on 2 CPU cores",
    budgets=DEFAULT.budgets + (
        Budget(dataset="boston", epochs=40),
        Budget(dataset="music_genre", epochs=30),
        Budget(dataset="mnist", epochs=5, n_train=8000, n_test=2000),
        Budget(dataset="fashion_mnist", epochs=5, n_train=4000, n_test=2000),
        Budget(dataset="cifar10", epochs=4, n_train=2000, n_test=1000, model="simple_cnn"),
        Budget(dataset="sentiment140", epochs=4, n_train=4000),
    ),
)

#: The full suite's selectors: the seed-000 baselines, the loss-based and published methods with their faithful
#: defaults, and the RandomDrop control.
FULL_SELECTORS = ("shuffle", "freeze", "homogeneous", "heterogeneous", "loss_sorted", "dybat", "infobatch",
                  "selective_backprop", "stale_selective_backprop", "online_batch", "importance", "ordered_sgd",
                  "rho_loss", "random_drop")

#: On the three large image datasets the suite keeps Shuffle, the two methods whose savings the literature reports
#: on such data (InfoBatch, SelectiveBackprop) and, on MNIST, SelectiveBackprop's control: the whole grid would
#: take about 27 hours on the 2-core machine (estimated from the pilot's Shuffle times and the overhead benchmark's
#: per-selector costs), against the suite's budget of about 4.
LARGE_SELECTORS = ("shuffle", "infobatch", "selective_backprop")
_LEFT_OUT = ("left out to fit the suite's ~4 h budget: {}; run them with --datasets {} --selectors ...")


def _left_out(dataset, kept):
    return _LEFT_OUT.format(", ".join(s for s in FULL_SELECTORS if s not in kept), dataset)


#: The complete training and test sets, fixed targets that Shuffle met on every pilot seed, learning rates from
#: ``loop.lr_range_test`` and epoch caps of twice the pilot's slowest seed (``benchmarks/full_pilot.py``, results
#: in ``results/full-pilot/``; docs/bench.md says how each was chosen).
FULL = Suite(
    name="full",
    description="the complete datasets to fixed targets (every run stops at its target), 5 seeds, learning rates "
                "from a range test; about 4 h 35 min on 2 CPU cores (measured, docs/results.md)",
    selectors=FULL_SELECTORS,
    seeds=5,
    budgets=(
        Budget(dataset="spirals", epochs=38, learning_rate=0.04, target={"val_accuracy": 0.98}, stop_at_target=True),
        Budget(dataset="iris", epochs=8, learning_rate=0.06, target={"val_accuracy": 0.96}, stop_at_target=True),
        Budget(dataset="wine", epochs=5, learning_rate=0.01, target={"val_accuracy": 0.97}, stop_at_target=True),
        Budget(dataset="boston", epochs=146, learning_rate=0.04, target={"val_mae": 2.4}, stop_at_target=True),
        Budget(dataset="music_genre", epochs=28, learning_rate=0.008, target={"val_accuracy": 0.68},
               stop_at_target=True),
        Budget(dataset="sentiment140", epochs=5, learning_rate=0.004, target={"val_accuracy": 0.72},
               stop_at_target=True),
        Budget(dataset="mnist", epochs=16, learning_rate=0.005, target={"val_accuracy": 0.99}, stop_at_target=True,
               selectors=LARGE_SELECTORS + ("random_drop",),
               note=_left_out("mnist", LARGE_SELECTORS + ("random_drop",))),
        Budget(dataset="fashion_mnist", epochs=16, learning_rate=0.002, target={"val_accuracy": 0.91},
               stop_at_target=True, selectors=LARGE_SELECTORS, note=_left_out("fashion_mnist", LARGE_SELECTORS)),
        Budget(dataset="cifar10", epochs=22, model="simple_cnn", learning_rate=0.001, target={"val_accuracy": 0.79},
               stop_at_target=True, selectors=LARGE_SELECTORS, note=_left_out("cifar10", LARGE_SELECTORS)),
    ),
)

#: The selectors of the workload variants: the large datasets' three, SelectiveBackprop's control and RS2, the
#: random-subset baseline a batch selector must beat.
VARIANT_SELECTORS = LARGE_SELECTORS + ("random_drop", "rs2")

#: Workload variants, each a workload of its own (stored and tabled under its name), so that a method tuned to one
#: setup shows it: MNIST with 20% of its training labels redrawn uniformly among the 10 classes (validation and test
#: labels clean), and Fashion-MNIST with its reference CNN at half width.  They validate on a split held out of the
#: training set (``validation="split"``; the test set is reported only), at the full suite's learning rates and
#: epoch caps, without fixed targets yet: the tables infer them from Shuffle's validation accuracy until a pilot on
#: the validation split (``benchmarks/full_pilot.py --validation split``) fixes them.
VARIANTS = Suite(
    name="variants",
    description="workload variants on validation splits: MNIST with 20% noisy training labels, Fashion-MNIST with a "
                "half-width CNN; not yet run",
    selectors=VARIANT_SELECTORS,
    seeds=5,
    budgets=(
        Budget(dataset="mnist", workload="mnist_noisy20", label_noise=0.2, validation="split", epochs=16,
               learning_rate=0.005),
        Budget(dataset="fashion_mnist", workload="fashion_mnist_half_width", model_kwargs={"width": 0.5},
               validation="split", epochs=16, learning_rate=0.002),
    ),
)

#: The tuned suite's selectors: the baseline, RS2 (the epoch-level random-subset baseline a selector must beat),
#: the two methods whose savings the full suite reported (SelectiveBackprop, InfoBatch), SelectiveBackprop's uniform
#: control (RandomDrop) and, where the RHO-LOSS paper predicts a win (noisy labels) and on the small datasets, RhoLoss.
TUNED_SELECTORS = ("shuffle", "rs2", "selective_backprop", "infobatch", "random_drop", "rho_loss")
_TUNED_LARGE = ("shuffle", "rs2", "selective_backprop", "infobatch", "random_drop")


def _tuned(dataset, epochs, target, selectors, note, **fields):
    """A tuned-suite workload on its validation split: the split pilot's target and epoch cap; no learning rate."""
    return Budget(dataset=dataset, epochs=epochs, target=target, stop_at_target=True, validation="split",
                  selectors=selectors, note=note, **fields)


_NO_RHO = "RhoLoss left out on the large clean datasets (its irreducible-loss model doubles a trial's cost)"

#: The tuned suite's workloads, cheapest first.  Each validates on its fixed validation split (targets, stops,
#: pruning and the learning-rate range test read the split and the training set; the test set is only reported),
#: with the target and epoch cap of the split pilot (``benchmarks/full_pilot.py --validation split``, committed in
#: results/split-pilot; docs/bench.md): the target is a round level every pilot seed of a constant-rate Shuffle beat
#: by one validation sample (MNIST's is fixed at 0.99), the cap twice the pilot's slowest epoch to it.  The noisy
#: MNIST and half-width Fashion-MNIST workloads are variants declared apart (``workload=``), so a method cannot be
#: tuned to one setup unnoticed.
TUNED_BUDGETS = [
    _tuned("spirals", 50, {"val_accuracy": 0.97}, TUNED_SELECTORS, "every tuned selector"),
    _tuned("music_genre", 30, {"val_accuracy": 0.61}, TUNED_SELECTORS, "every tuned selector"),
    _tuned("mnist", 6, {"val_accuracy": 0.98}, TUNED_SELECTORS,
           "20% noisy training labels, where the RHO-LOSS paper predicts a win: every tuned selector",
           workload="mnist_noisy20", label_noise=0.2),
    _tuned("mnist", 8, {"val_accuracy": 0.985}, _TUNED_LARGE, _NO_RHO),
    _tuned("fashion_mnist", 18, {"val_accuracy": 0.92}, _TUNED_LARGE, _NO_RHO),
]

#: Equal tuning for every method (AlgoPerf's rule): K=6 quasirandom trials of learning rate, schedule, horizon,
#: warm-up and the method's own knobs per study, 3 studies, exact pruning (docs/bench.md, "The tuned suite").
TUNED = Suite(
    name="tuned",
    description="every selector tuned alike on validation splits: 6 quasirandom trials per study (learning rate "
                "around a range test's, schedule shape, horizon, warm-up, the method's knob), a study's score its "
                "fastest trial to the split pilot's target; 3 studies",
    selectors=TUNED_SELECTORS,
    seeds=3,
    tune=6,
    budgets=tuple(TUNED_BUDGETS),
)

#: By name.  The command line's ``--datasets`` takes a dataset's budget from the last suite here that has it (the
#: chosen suite's own first), so ``full`` comes after ``tuned``: ``--datasets mnist`` keeps the full suite's budget.
SUITES = {suite.name: suite for suite in (DEFAULT, SEEDS, TUNED, VARIANTS, FULL)}
