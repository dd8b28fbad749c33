"""Named benchmark suites: which workloads, hyper-parameters, selectors and studies a campaign runs.

A suite is a :class:`Suite` of :class:`Entry` objects: each pairs a :class:`~loop.bench.workloads.Workload` (what is
trained, fixed) with the suite's :class:`~loop.bench.workloads.Hyperparameters` for it (a learning rate; the tuned
suite searches them instead) and, where the suite runs fewer selectors there, which ones (membership is the suite's
business, never the workload's).  The command line overrides any of them (``--epochs``, ``--n-train``,
``--selectors`` ...).  ``tune`` > 0 makes the suite a search: every selector gets ``tune`` quasirandom trials per
study (:mod:`loop.bench.search`; the ``tuned`` suite).
"""

import dataclasses

from loop.bench.workloads import SCHEDULE_SHAPES, VALIDATIONS, Hyperparameters, Workload  # noqa: F401 (re-exported)

#: The selectors of the default suite: the baseline, the order-only baselines
#: of the seed 000 experiment, one of each family of published methods, and
#: RandomDrop, the uniform control that selective backprop must beat.
DEFAULT_SELECTORS = ("shuffle", "freeze", "homogeneous", "heterogeneous", "loss_sorted", "dybat", "infobatch",
                     "selective_backprop", "random_drop", "rho_loss")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Entry:
    """One workload of a suite: the workload, the suite's hyper-parameters for it, and which selectors run there.

    Attributes:
        workload: a :class:`~loop.bench.workloads.Workload`.
        hyperparameters: the suite's :class:`~loop.bench.workloads.Hyperparameters` on it (a search starts from
            them and varies the learning rate and schedule).
        selectors: the suite's selector specs this workload runs (None: all of them); ``--selectors`` overrides
            it.  Not part of a trial's identity, so changing the list never re-runs stored trials.
        note: why the entry is as it is (e.g. which selectors it leaves out).
        trials: K for this workload in a searched suite (None: the suite's ``tune``); e.g. more trials where an
            epoch takes under a second.  ``--tune K`` overrides it.
    """

    workload: Workload
    hyperparameters: Hyperparameters = Hyperparameters()
    selectors: tuple | None = None
    note: str = ""
    trials: int | None = None

    @property
    def name(self):
        """The workload's name (``Workload.label``)."""
        return self.workload.label

    def runs(self, spec):
        """Whether the selector ``spec`` (a string, or an object, which always runs) runs on this workload."""
        return self.selectors is None or not isinstance(spec, str) or spec in self.selectors


def entry(dataset, epochs, *, learning_rate=None, batch_size=None, schedule="constant", warmup=0.0, horizon=1.0,
          selectors=None, note="", trials=None, **workload):
    """An :class:`Entry` from flat keyword arguments: the hyper-parameters' fields, ``selectors``, ``note``, ``trials``, and
    the :class:`~loop.bench.workloads.Workload`'s fields (``dataset``, ``epochs`` and ``**workload``)."""
    return Entry(workload=Workload(dataset=dataset, epochs=epochs, **workload),
                 hyperparameters=Hyperparameters(learning_rate=learning_rate, batch_size=batch_size,
                                                 schedule=schedule, warmup=warmup, horizon=horizon),
                 selectors=None if selectors is None else tuple(selectors), note=note, trials=trials)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Suite:
    """Entries (workloads with their hyper-parameters), selectors, and the number of studies.

    A study ``s`` trains with seed ``s`` (weights and plans), paired across selectors.  ``tune`` > 0 makes it a
    search: every selector gets ``tune`` quasirandom trials per study (:mod:`loop.bench.search`), and a study's score
    is its fastest trial; with ``tune`` = 0 a study is one trial at the entry's hyper-parameters.
    """

    name: str
    entries: tuple
    selectors: tuple = DEFAULT_SELECTORS
    studies: int = 3
    description: str = ""
    tune: int = 0


def _one_clock(dataset, epochs, target, eval_period, **fields):
    """A workload of the one-clock protocol: its validation split, a fixed target, the seconds clock."""
    return entry(dataset, epochs, target={"val_accuracy": target}, stop_at_target=True, validation="split",
                 clock="seconds", eval_period=eval_period, **fields)


#: The A/A control every tuned workload runs: Shuffle drawing from another stream.  Its row must say "no difference".
AA = "shuffle_aa"

#: The main job: the one-clock tuned protocol at small scale, offline.  Targets and caps are the split pilot's
#: (``benchmarks/full_pilot.py --validation split``, results/split-pilot): iris and wine reach theirs within 1-3
#: epochs of a few mini-batches, so their evaluation grid is one compiled chunk (an epoch) wide; spirals is the
#: workload where the comparison means something.
DEFAULT = Suite(
    name="default",
    description="the one-clock tuned protocol at small scale, offline, about 5 minutes on 2 CPU cores: spirals, iris "
                "and wine on validation splits, 3 quasirandom trials per study, 5 studies, an A/A control",
    selectors=("shuffle", AA, "infobatch", "selective_backprop", "rs2"),
    studies=5,
    tune=3,
    entries=(
        _one_clock("spirals", 50, 0.97, 2.0),
        _one_clock("iris", 6, 0.955, 0.5),
        _one_clock("wine", 5, 0.965, 0.25),
    ),
)

#: The main job of the older protocol (an evaluation per loop epoch, a constant learning rate, targets inferred from
#: Shuffle's best test accuracy): kept for its stored results and tests.
UNTUNED = Suite(
    name="untuned",
    description="the older, untuned protocol: spirals, iris and wine at a constant rate, each selector evaluated per "
                "loop epoch on the test set, targets inferred from Shuffle; not a verdict",
    entries=(
        entry("spirals", epochs=25),
        entry("iris", epochs=40),
        entry("wine", epochs=20),
    ),
)

SEEDS = Suite(
    name="seeds",
    description="every dataset of the original experiments on real data, sized for ~25 minutes on 2 CPU cores",
    entries=UNTUNED.entries + (
        entry("boston", epochs=40),
        entry("music_genre", epochs=30),
        entry("mnist", epochs=5, n_train=8000, n_test=2000),
        entry("fashion_mnist", epochs=5, n_train=4000, n_test=2000),
        entry("cifar10", epochs=4, n_train=2000, n_test=1000, model="simple_cnn"),
        entry("sentiment140", epochs=4, n_train=4000),
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
    studies=5,
    entries=(
        entry("spirals", epochs=38, learning_rate=0.04, target={"val_accuracy": 0.98}, stop_at_target=True),
        entry("iris", epochs=8, learning_rate=0.06, target={"val_accuracy": 0.96}, stop_at_target=True),
        entry("wine", epochs=5, learning_rate=0.01, target={"val_accuracy": 0.97}, stop_at_target=True),
        entry("boston", epochs=146, learning_rate=0.04, target={"val_mae": 2.4}, stop_at_target=True),
        entry("music_genre", epochs=28, learning_rate=0.008, target={"val_accuracy": 0.68},
               stop_at_target=True),
        entry("sentiment140", epochs=5, learning_rate=0.004, target={"val_accuracy": 0.72},
               stop_at_target=True),
        entry("mnist", epochs=16, learning_rate=0.005, target={"val_accuracy": 0.99}, stop_at_target=True,
               selectors=LARGE_SELECTORS + ("random_drop",),
               note=_left_out("mnist", LARGE_SELECTORS + ("random_drop",))),
        entry("fashion_mnist", epochs=16, learning_rate=0.002, target={"val_accuracy": 0.91},
               stop_at_target=True, selectors=LARGE_SELECTORS, note=_left_out("fashion_mnist", LARGE_SELECTORS)),
        entry("cifar10", epochs=22, model="simple_cnn", learning_rate=0.001, target={"val_accuracy": 0.79},
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
    studies=5,
    entries=(
        entry("mnist", name="mnist_noisy20", label_noise=0.2, validation="split", epochs=16,
               learning_rate=0.005),
        entry("fashion_mnist", name="fashion_mnist_half_width", model_kwargs={"width": 0.5},
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
    return entry(dataset, epochs, target=target, stop_at_target=True, validation="split", selectors=selectors,
                 note=note, **fields)


_NO_RHO = "RhoLoss left out on the large clean datasets (its irreducible-loss model doubles a trial's cost)"

#: The tuned suite's workloads, cheapest first.  Each validates on its fixed validation split (targets, stops,
#: pruning and the learning-rate range test read the split and the training set; the test set is only reported),
#: with the target and epoch cap of the split pilot (``benchmarks/full_pilot.py --validation split``, committed in
#: results/split-pilot; docs/bench.md): the target is a round level every pilot seed of a constant-rate Shuffle beat
#: by one validation sample (MNIST's is fixed at 0.99), the cap twice the pilot's slowest epoch to it.  The noisy
#: MNIST and half-width Fashion-MNIST workloads are variants declared apart (``name=``), so a method cannot be
#: tuned to one setup unnoticed.
TUNED_ENTRIES = [
    _tuned("spirals", 50, {"val_accuracy": 0.97}, TUNED_SELECTORS, "every tuned selector"),
    _tuned("music_genre", 30, {"val_accuracy": 0.61}, TUNED_SELECTORS, "every tuned selector"),
    _tuned("mnist", 6, {"val_accuracy": 0.98}, TUNED_SELECTORS,
           "20% noisy training labels, where the RHO-LOSS paper predicts a win: every tuned selector",
           name="mnist_noisy20", label_noise=0.2),
    _tuned("mnist", 8, {"val_accuracy": 0.985}, _TUNED_LARGE, _NO_RHO),
    _tuned("fashion_mnist", 18, {"val_accuracy": 0.92}, _TUNED_LARGE, _NO_RHO),
]

#: Equal tuning for every method (AlgoPerf's rule): K=6 quasirandom trials of learning rate, schedule, horizon,
#: warm-up and the method's own knobs per study, 3 studies, exact pruning (docs/bench.md, "The tuned suite").
TUNED_V2 = Suite(
    name="tuned-v2",
    description="the previous tuned protocol (v2, results/tuned-v2): each selector evaluated per loop epoch and "
                "decayed over its own steps; every selector tuned alike on validation splits: 6 quasirandom trials "
                "per study (learning rate "
                "around a range test's, schedule shape, horizon, warm-up, the method's knob), a study's score its "
                "fastest trial to the split pilot's target; 3 studies",
    selectors=TUNED_SELECTORS,
    studies=3,
    tune=6,
    entries=tuple(TUNED_ENTRIES),
)



#: The tuned suite on one clock (v3): every method is evaluated on one grid of training seconds (about 9 evaluations
#: before Shuffle's target: the evaluation period is the split pilot's median epochs to target / 9), decays over
#: training seconds and trains within one time budget (the epoch cap in Shuffle epochs of seconds,
#: :mod:`loop.bench.calibration`); 5 studies, 8 trials where an epoch takes under a second, an A/A control
#: (ShuffleAA) on every workload.  Fashion-MNIST last, with 3 studies (docs/bench.md estimates the cost).
#: The small workloads run every method, the five of issue "The next methods" included (KAKURENBO, RS2 with
#: replacement, GradMatch-PB, CRAIG-PB, DivBS).
TUNED_V3_SELECTORS = ("shuffle", AA, "rs2", "selective_backprop", "infobatch", "random_drop", "rho_loss", "kakurenbo",
                      "rs2:replacement=True", "gradmatch_pb", "craig_pb", "divbs")
_V3_FASHION = ("shuffle", AA, "rs2", "selective_backprop", "infobatch", "random_drop")
#: MNIST adds KAKURENBO and GradMatch-PB to Fashion-MNIST's methods.
_V3_LARGE = _V3_FASHION + ("kakurenbo", "gradmatch_pb")
#: Noisy MNIST: every method but RS2 with replacement, CRAIG-PB and DivBS (issue "The next methods": KAKURENBO and
#: GradMatch-PB there).
_V3_NOISY = ("shuffle", AA, "rs2", "selective_backprop", "infobatch", "random_drop", "rho_loss", "kakurenbo",
             "gradmatch_pb")

TUNED = Suite(
    name="tuned",
    description="every selector tuned alike on one clock (validation splits, one evaluation grid in training "
                "seconds, schedules over training seconds, one time budget): 6-8 quasirandom trials per study from "
                "one pool per workload, 5 studies, an A/A control",
    selectors=TUNED_V3_SELECTORS,
    studies=5,
    tune=6,
    entries=(
        _one_clock("spirals", 50, 0.97, 2.0, selectors=TUNED_V3_SELECTORS, trials=8, note="every tuned selector"),
        _one_clock("music_genre", 30, 0.61, 1.1, selectors=TUNED_V3_SELECTORS, trials=8,
                   note="every tuned selector"),
        _one_clock("mnist", 6, 0.98, 0.33, name="mnist_noisy20", label_noise=0.2, selectors=_V3_NOISY,
                   note="20% noisy training labels, where the RHO-LOSS paper predicts a win: every tuned selector"),
        _one_clock("mnist", 8, 0.985, 0.4, selectors=_V3_LARGE, note=_NO_RHO),
        _one_clock("fashion_mnist", 18, 0.92, 0.95, selectors=_V3_FASHION, note=_NO_RHO + "; run with --seeds 3"),
    ),
)

#: By name.  The command line's ``--datasets`` takes a workload's entry from the last suite here that has it (the
#: chosen suite's own first), so ``full`` comes after ``tuned``: ``--datasets mnist`` keeps the full suite's entry.
SUITES = {suite.name: suite for suite in (DEFAULT, UNTUNED, SEEDS, TUNED_V2, TUNED, VARIANTS, FULL)}
