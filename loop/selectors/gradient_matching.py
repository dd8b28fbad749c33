"""GradMatch-PB and CRAIG-PB: every few epochs, a weighted subset of mini-batches whose gradients match the whole's.

Both are CORDS' per-batch ("PB") adaptive data subset selection (decile-team/cords): the training set is cut into
fixed mini-batches, each mini-batch is summarized by the mean of its samples' last-layer gradient approximations,
and a subset of those mini-batches, with weights, stands in for the full gradient until the next selection.
GradMatch finds it by orthogonal matching pursuit with non-negative weights (:func:`orthogonal_matching_pursuit`),
CRAIG by greedy facility location on the gradients' distances (:func:`facility_location`).  What they share (the
schedule, the warm start, the gradient pass, the plan) is :class:`GradientSubset`.
"""

import math

import numpy as np

from loop.selectors._common import check_number
from loop.selectors.base import Selector, register
from loop.selectors.baselines import chunk


def orthogonal_matching_pursuit(A, b, nnz, *, positive=True, lam=0.0, tol=1e-4):
    """Approximately ``min ||A x - b||`` over ``x`` with at most ``nnz`` non-zeros (non-negative if ``positive``).

    Orthogonal matching pursuit as CORDS' ``OrthogonalMP_REG_Parallel_V1`` (``cords/selectionstrategies/helpers/
    omp_solvers.py``): starting from the residual ``r = b``, each round adds the column most correlated with the
    residual (``argmax(A^T r)`` when ``positive``, else of its absolute value), solves the regularized least squares
    ``(A_S^T A_S + lam I) x_S = A_S^T b`` on the chosen set ``S`` (the first pick alone takes its projection
    ``a.b / a.a``), drops the most negative coefficient while any is
    negative (``positive``), and updates ``r = b - A_S x_S``; it stops after ``nnz`` rounds or once
    ``||r|| / ||b|| < tol``.

    Deviation: it also stops when the best column is already chosen (or, with ``positive``, has no positive
    correlation left), as CORDS' NumPy solver ``OrthogonalMP_REG`` does; the reference's GPU solver appends such a
    column's row again while leaving its index list alone, so its coefficients no longer line up with its indices.

    Args:
        A: the ``(d, n)`` matrix whose columns are the candidates.
        b: the ``(d,)`` target.
        nnz: the most columns to choose.
        positive: only non-negative coefficients.
        lam: the ridge term ``lam`` of the least squares (CORDS' ``lam``).
        tol: the relative residual at which to stop (CORDS' ``eps``).

    Returns:
        float64 ``x`` of length ``n``, non-zero on the chosen columns.
    """
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if A.ndim != 2 or A.shape[0] != len(b):
        raise ValueError(f"orthogonal_matching_pursuit: A has shape {A.shape} and b {b.shape}; A must be (d, n) "
                         "with d = len(b)")
    n = A.shape[1]
    x = np.zeros(n)
    norm_b = np.linalg.norm(b)
    if norm_b == 0 or n == 0:
        return x
    chosen, coef, residual = [], np.zeros(0), b.copy()
    for _ in range(min(int(nnz), n)):
        if np.linalg.norm(residual) / norm_b < tol:
            break
        projections = A.T @ residual
        index = int(np.argmax(projections if positive else np.abs(projections)))
        if index in chosen or positive and projections[index] <= 0:
            break
        chosen.append(index)
        # The first pick's weight is its plain projection, as the reference's; later ones solve the ridge problem.
        coef = np.array([projections[index] / (A[:, index] @ A[:, index])]) if len(chosen) == 1 else \
            _solve(A, b, chosen, lam)
        while positive and len(chosen) and coef.min() < 0:
            del chosen[int(np.argmin(coef))]
            coef = _solve(A, b, chosen, lam) if chosen else np.zeros(0)
        residual = b - A[:, chosen] @ coef if chosen else b.copy()
    x[chosen] = coef
    return x


def _solve(A, b, chosen, lam):
    """The coefficients of the columns ``chosen``: ``(A_S^T A_S + lam I) x = A_S^T b`` by least squares."""
    columns = A[:, chosen]
    gram = columns.T @ columns + lam * np.eye(len(chosen))
    return np.linalg.lstsq(gram, columns.T @ b, rcond=None)[0]


def facility_location(similarity, k):
    """Greedy facility location: ``k`` rows maximizing ``F(S) = sum_j max_{i in S} similarity[i, j]``.

    Each round picks the row with the largest gain ``sum_j max(similarity[i, j] - best_j, 0)`` (``best_j`` the
    current maximum over ``S``, 0 for the empty set, as in apricot's ``FacilityLocationSelection``), ties to the
    lowest index (a round with no gain still picks, as apricot fills ``n_samples``).  Lazy greedy (CORDS'
    ``optimizer='lazy'``) picks the same set up to ties.

    Args:
        similarity: ``(n, n)`` non-negative similarities.
        k: the number of rows to pick.

    Returns:
        ``(picks, weights)``: the picked rows in the order picked, and each one's weight, the number of columns
        ``j`` for which it is the most similar pick (CRAIG's ``gamma``; ties to the earlier pick).
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n = similarity.shape[0]
    best = np.zeros(similarity.shape[1])
    picks = []
    available = np.ones(n, bool)
    for _ in range(min(int(k), n)):
        gains = np.maximum(similarity - best, 0.0).sum(axis=1)
        gains[~available] = -np.inf
        pick = int(np.argmax(gains))
        picks.append(pick)
        available[pick] = False
        best = np.maximum(best, similarity[pick])
    picks = np.asarray(picks, np.int64)
    nearest = np.argmax(similarity[picks], axis=0)
    return picks, np.bincount(nearest, minlength=len(picks)).astype(np.float64)


class GradientSubset(Selector):
    """What GradMatch-PB and CRAIG-PB share: fixed mini-batches, a selection every ``select_every`` epochs, the
    warm start, and the weighted subset's plan.

    The schedule, as CORDS' ``AdaptiveDSSDataLoader`` (``cords/utils/data/dataloader/SL/adaptive/
    adaptivedataloader.py``), in the reference's epochs ``r`` of a run of ``E`` (the loop's ``epochs``):

    * the budget is ``int(fraction * n)`` samples, ``ceil(budget / batch_size)`` mini-batches;
    * with ``kappa > 0`` the run warms up on the full data for ``W = ceil(int(kappa * E) * fraction)`` epochs and
      skips the epochs ``W < r < int(kappa * E)`` (the reference trains nothing in them); here the skipped epochs
      are not run, so loop epoch ``e`` is the reference's epoch ``e`` up to ``W`` and ``e + int(kappa * E) - W - 1``
      after it;
    * outside the warm-up every epoch trains the current subset; it starts as a uniform random subset of the
      budget with weights 1, and is selected anew at the start of every epoch ``r`` with ``r % select_every == 0``
      and ``r > 1`` (the reference's condition);
    * a selection pass runs one forward pass over the training set (``state.quantities``; it and the selection
      count on the training clock) for the per-sample loss gradients at the last layer's pre-activation
      (``p - y``) and, with ``linear_layer``, the last layer's inputs ``h``; a mini-batch's gradient is the mean
      over its samples of ``[p - y, (p - y) outer h]`` (CORDS' ``compute_gradients(perBatch=True)``, ``l0_grads``
      and ``l1_grads``), and :meth:`select_batches` picks the mini-batches and their weights;
    * every sample of a picked mini-batch carries its mini-batch's weight; if the picks hold fewer than the budget,
      random other samples fill it with weight 1 (GradMatch's ``diff > 0`` branch);
    * each epoch the subset is shuffled and cut into batches of ``batch_size``; a batch's loss is
      ``sum(w_i * loss_i) / sum(w_i)`` (the reference's training loop, ``torch.dot(losses, weights /
      weights.sum())``), so the plan's weights are scaled to sum to each batch's size.

    Deviation: the reference's fixed mini-batches are its unshuffled loader's, contiguous runs of the dataset's
    order; here they are a seeded random partition of the training set drawn once per fit, so a file sorted by
    class (iris, say) does not give one-class mini-batches.  Draws come from ``state.rng``.

    Args:
        fraction: the subset's share of the training set, in (0, 1].
        select_every: epochs between selections (CORDS' ``select_every``).
        kappa: the warm start's share of the run, in [0, 1) (0: none; CORDS' ``-Warm`` configurations use 0.5).
        linear_layer: also match the last layer's weight gradients (``(p - y) outer h``), not only its bias's.
    """

    #: The main knob for ``--tune``: CORDS' papers run 5%, 10% and 30% subsets.
    tune_space = {"fraction": ("uniform", 0.05, 0.3)}
    linear_layer_default = True

    def __init__(self, fraction=0.1, select_every=20, kappa=0.0, linear_layer=None):
        owner = type(self).__name__
        self.fraction = check_number(owner, "fraction", fraction, low=0, high=1, low_open=True)
        self.select_every = check_number(owner, "select_every", select_every, low=1, integer=True)
        self.kappa = check_number(owner, "kappa", kappa, low=0, high=1, high_open=True)
        if linear_layer is not None and not isinstance(linear_layer, (bool, np.bool_)):
            raise ValueError(f"{owner}: linear_layer={linear_layer!r} must be True, False or None (the method's "
                             "default)")
        self.linear_layer = linear_layer
        self.partition_ = None       # the fixed mini-batches: a permutation of the samples, cut every batch_size
        self.subset_ = None          # the current subset's samples
        self.subset_weights_ = None  # and their weights
        self.selections_ = 0         # how many selections ran

    @property
    def needs(self):
        linear = self.linear_layer_default if self.linear_layer is None else self.linear_layer
        return ("last_layer_gradients", "features") if linear else ("last_layer_gradients",)

    # ----------------------------------------------------------- the schedule
    def budget(self, num_samples):
        """The subset's size in samples: ``int(fraction * n)`` (CORDS' ``budget``), at least 1."""
        return max(1, int(num_samples * self.fraction))

    def warm_epochs(self, epochs):
        """``(W, select_after)``: the full-data warm-up epochs and the reference epoch where selection starts."""
        if self.kappa == 0:
            return 0, 0
        select_after = int(self.kappa * epochs)
        return int(math.ceil(select_after * self.fraction)), select_after

    def reference_epoch(self, epoch, epochs):
        """The reference's epoch of loop epoch ``epoch``: the skipped warm-start epochs are not run here."""
        warm, select_after = self.warm_epochs(epochs)
        return epoch if epoch <= warm else epoch + max(0, select_after - warm - 1)

    def selects(self, epoch, epochs):
        """Whether loop epoch ``epoch`` starts a selection (the reference's ``r % select_every == 0`` and ``r > 1``)."""
        warm, _ = self.warm_epochs(epochs)
        r = self.reference_epoch(epoch, epochs)
        return epoch >= warm and r % self.select_every == 0 and r > 1

    def expected_steps(self, epochs, num_samples, batch_size):
        """Optimizer steps of ``epochs`` loop epochs: ``ceil(n / b)`` per warm-up epoch, ``ceil(budget / b)`` per
        subset epoch (exact unless a pick is the partition's one short mini-batch or the picks overshoot the
        budget by part of a mini-batch)."""
        owner = f"{type(self).__name__}.expected_steps"
        epochs = check_number(owner, "epochs", epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        warm = min(self.warm_epochs(epochs)[0], epochs)
        return warm * math.ceil(num_samples / batch_size) + \
            (epochs - warm) * math.ceil(self.budget(num_samples) / batch_size)

    def epochs_for_budget(self, baseline_epochs, num_samples, batch_size):
        """The fewest loop epochs whose :meth:`expected_steps` reach the baseline's ``E * ceil(n / b)`` steps."""
        owner = f"{type(self).__name__}.epochs_for_budget"
        baseline_epochs = check_number(owner, "baseline_epochs", baseline_epochs, low=0, integer=True)
        num_samples = check_number(owner, "num_samples", num_samples, low=1, integer=True)
        batch_size = min(check_number(owner, "batch_size", batch_size, low=1, integer=True), num_samples)
        target = baseline_epochs * math.ceil(num_samples / batch_size)
        low, high = 0, baseline_epochs * math.ceil(num_samples / batch_size) + 1
        while low < high:  # expected_steps grows with the epochs
            middle = (low + high) // 2
            if self.expected_steps(middle, num_samples, batch_size) >= target:
                high = middle
            else:
                low = middle + 1
        return low

    # -------------------------------------------------------------- selection
    def batch_gradients(self, quantities, batches):
        """Each mini-batch's mean last-layer gradient approximation, one row per batch.

        Args:
            quantities: ``state.quantities`` of every sample: ``"last_layer_gradients"`` ``[n, k]`` and, with
                ``linear_layer``, ``"features"`` ``[n, d]``.
            batches: the mini-batches, index arrays.

        Returns:
            float64 ``[len(batches), k]``, or ``[len(batches), k + k * d]`` with the last layer's weight gradients
            (row-major ``k x d``, CORDS' ``l1_grads`` up to the order of the columns).
        """
        g = np.asarray(quantities["last_layer_gradients"], np.float64)
        g = g.reshape(len(g), -1)
        rows = [g[batch].mean(axis=0) for batch in batches]
        if "features" not in self.needs:
            return np.stack(rows)
        h = np.asarray(quantities["features"], np.float64)
        h = h.reshape(len(h), -1)
        outer = [(g[batch].T @ h[batch]).ravel() / len(batch) for batch in batches]
        return np.concatenate([np.stack(rows), np.stack(outer)], axis=1)

    def select_batches(self, gradients, k):
        """``(picks, weights)``: which of the mini-batches (rows of ``gradients``) to train, and their weights."""
        raise NotImplementedError

    def _batches(self, state):
        if self.partition_ is None or len(self.partition_) != state.num_samples:
            self.partition_ = state.rng.permutation(state.num_samples)
        return chunk(self.partition_, state.batch_size)

    def select(self, state):
        """Runs a selection: the gradient pass, :meth:`select_batches`, the fill-up; sets the subset."""
        n, budget = state.num_samples, self.budget(state.num_samples)
        batches = self._batches(state)
        quantities = state.quantities(np.arange(n))
        gradients = self.batch_gradients(quantities, batches)
        picks, weights = self.select_batches(gradients, math.ceil(budget / state.batch_size))
        subset = np.concatenate([batches[p] for p in picks]) if len(picks) else np.zeros(0, np.int64)
        sample_weights = np.concatenate([np.full(len(batches[p]), w) for p, w in zip(picks, weights)]) \
            if len(picks) else np.zeros(0)
        if len(subset) < budget:  # the reference fills the budget with random samples of weight 1
            rest = np.setdiff1d(np.arange(n), subset)
            fill = state.rng.choice(rest, size=min(budget - len(subset), len(rest)), replace=False)
            subset = np.concatenate([subset, fill])
            sample_weights = np.concatenate([sample_weights, np.ones(len(fill))])
        self.subset_, self.subset_weights_ = subset.astype(np.int64), sample_weights.astype(np.float64)
        self.selections_ += 1

    # -------------------------------------------------------------------- plan
    def __call__(self, state):
        n = state.num_samples
        warm, _ = self.warm_epochs(state.epochs)
        if state.epoch < warm:  # the warm start: the full data, weights 1
            return chunk(state.rng.permutation(n), state.batch_size)
        if self.selects(state.epoch, state.epochs):
            self.select(state)
        elif self.subset_ is None or (len(self.subset_) and self.subset_.max() >= n):  # the initial random subset
            self.subset_ = np.sort(state.rng.choice(n, size=self.budget(n), replace=False))
            self.subset_weights_ = np.ones(len(self.subset_))
        order = state.rng.permutation(len(self.subset_))
        plan = []
        for positions in chunk(order, state.batch_size):
            weights = self.subset_weights_[positions]
            total = weights.sum()
            scaled = weights * (len(positions) / total) if total > 0 else np.ones(len(positions))
            plan.append((self.subset_[positions], scaled.astype(np.float32)))
        return plan


@register("gradmatch_pb")
class GradMatchPB(GradientSubset):
    """GradMatch-PB: every ``select_every`` epochs, the weighted mini-batches whose summed gradients best match
    the full training gradient, found by orthogonal matching pursuit with non-negative weights.

    Definition: the schedule, gradient pass and plan of :class:`GradientSubset`; the selection solves
    ``min ||sum_b w_b g_b - sum_b g_b||`` over ``w >= 0`` with at most ``ceil(budget / batch_size)`` non-zero
    ``w_b`` (``g_b`` the mini-batch gradients) by :func:`orthogonal_matching_pursuit` (``lam``, ``eps``), and each
    picked mini-batch's samples get its ``w_b``.

    Reference: Killamsetty, Sivasubramanian, Ramakrishnan, De, Iyer, "GRAD-MATCH: Gradient Matching based Data
    Subset Selection for Efficient Deep Model Training", ICML 2021; code ``decile-team/cords``:
    ``cords/selectionstrategies/SL/gradmatchstrategy.py`` (``select``, ``selection_type='PerBatch'``: the
    per-batch gradients, the target ``sum(trn_gradients)``, ``ompwrapper`` with ``nnz = ceil(budget /
    batch_size)``, the random fill of weight 1), ``helpers/omp_solvers.py`` (``OrthogonalMP_REG_Parallel_V1``,
    ``v1=True``), ``utils/data/dataloader/SL/adaptive/`` (the schedule) and ``train_sl.py`` (the weighted loss).
    Defaults are its ``configs/SL/config_gradmatchpb_cifar10.py``: ``fraction=0.1``, ``select_every=20``,
    ``lam=0``, ``eps=1e-100``, ``linear_layer=True``, ``valid=False``, ``kappa=0``
    (``config_gradmatchpb-warm_cifar10.py``: ``kappa=0.5``).  Deviations: those of :class:`GradientSubset` and
    :func:`orthogonal_matching_pursuit`; the validation-gradient target (``valid=True``) is not offered.

    Args:
        fraction, select_every, kappa, linear_layer: see :class:`GradientSubset`.
        lam: the ridge term of the matching pursuit's least squares.
        eps: the relative residual at which the matching pursuit stops.
    """

    def __init__(self, fraction=0.1, select_every=20, kappa=0.0, linear_layer=None, lam=0.0, eps=1e-100):
        super().__init__(fraction, select_every, kappa, linear_layer)
        self.lam = check_number("GradMatchPB", "lam", lam, low=0)
        self.eps = check_number("GradMatchPB", "eps", eps, low=0)

    def select_batches(self, gradients, k):
        target = gradients.sum(axis=0)
        x = orthogonal_matching_pursuit(gradients.T, target, k, positive=True, lam=self.lam, tol=self.eps)
        picks = np.flatnonzero(x)
        return picks, x[picks]


@register("craig_pb")
class CRAIGPB(GradientSubset):
    """CRAIG-PB: every ``select_every`` epochs, the mini-batches that are the facility-location medoids of the
    mini-batch gradients, each weighted by the number of mini-batches it stands for.

    Definition: the schedule, gradient pass and plan of :class:`GradientSubset`; the similarity of mini-batches
    ``a`` and ``b`` is ``c - ||g_a - g_b||^2`` with ``c`` the largest squared distance, the selection is
    :func:`facility_location` with ``ceil(budget / batch_size)`` picks, and a pick's weight is the number of
    mini-batches nearest to it (CRAIG's ``gamma``).

    Reference: Mirzasoleiman, Bilmes, Leskovec, "Coresets for Data-efficient Training of Machine Learning Models",
    ICML 2020; its per-batch variant as in ``decile-team/cords``: ``cords/selectionstrategies/SL/craigstrategy.py``
    (``compute_score``: the squared distances and ``const - dist``; ``select`` with ``selection_type='PerBatch'``
    and apricot's ``FacilityLocationSelection(metric='precomputed', optimizer='lazy')``; ``compute_gamma``).
    Defaults are its ``configs/SL/config_craigpb_cifar10.py``: ``fraction=0.1``, ``select_every=20``,
    ``linear_layer=False``, ``if_convex=False``, ``kappa=0`` (``-warm``: ``kappa=0.5``).  Deviations: those of
    :class:`GradientSubset` and :func:`facility_location`; the reference computes its mini-batch gradients on a
    shuffled loader (``SubsetRandomSampler``) but maps the picks to its unshuffled loader's mini-batches, so its
    weights and picks belong to different mini-batches; here both are the same fixed mini-batches.  The convex
    variant (``if_convex=True``, distances between inputs) is not offered.

    Args:
        fraction, select_every, kappa, linear_layer: see :class:`GradientSubset` (``linear_layer`` defaults to
            False, as the reference's configurations).
    """

    linear_layer_default = False

    def select_batches(self, gradients, k):
        squared = (gradients ** 2).sum(axis=1)
        distances = np.maximum(squared[:, None] + squared[None, :] - 2.0 * gradients @ gradients.T, 0.0)
        similarity = distances.max() - distances
        return facility_location(similarity, k)


__all__ = ["CRAIGPB", "GradMatchPB", "GradientSubset", "facility_location", "orthogonal_matching_pursuit"]
