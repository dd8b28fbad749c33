"""Batch selectors: callables that turn the loop's per-epoch state into a plan of mini-batches.

One module per family: :mod:`~loop.selectors.baselines` (shuffle, its A/A control, frozen order),
:mod:`~loop.selectors.class_based` (single-class and class-balanced batches),
:mod:`~loop.selectors.loss_based` (orderings and rank sampling by last-seen loss),
:mod:`~loop.selectors.sampling` (weighted random orders),
:mod:`~loop.selectors.dynamic` (batch-size schedules around any selector),
:mod:`~loop.selectors.dybat`, :mod:`~loop.selectors.infobatch`,
:mod:`~loop.selectors.importance`, :mod:`~loop.selectors.selective_backprop`,
:mod:`~loop.selectors.stale_selective_backprop`, :mod:`~loop.selectors.ordered_sgd`,
:mod:`~loop.selectors.rho_loss`, :mod:`~loop.selectors.rs2`, :mod:`~loop.selectors.kakurenbo`,
:mod:`~loop.selectors.gradient_matching` (GradMatch-PB, CRAIG-PB) and :mod:`~loop.selectors.divbs` (published
methods), and
:mod:`~loop.selectors.random_drop` (their uniform control).  Your own selector joins them by name with
:func:`register`, by import path (``from_string("my_module:MySelector:beta=2")``) or, from an installed package,
through the ``loop.selectors`` entry-point group (:mod:`~loop.selectors.plugins`).
"""

from loop.selectors.base import Selector, describe, from_string, register, registered
from loop.selectors.baselines import Freeze, Shuffle, ShuffleAA, chunk
from loop.selectors.class_based import Heterogeneous, Homogeneous
from loop.selectors.divbs import DivBS
from loop.selectors.dybat import DyBAT
from loop.selectors.dynamic import DynamicBatchSize
from loop.selectors.gradient_matching import CRAIGPB, GradMatchPB
from loop.selectors.importance import ImportanceSampling
from loop.selectors.infobatch import InfoBatch
from loop.selectors.kakurenbo import KAKURENBO
from loop.selectors.loss_based import Curriculum, LossSorted, OnlineBatchSelection
from loop.selectors.ordered_sgd import OrderedSGD
from loop.selectors.random_drop import RandomDrop
from loop.selectors.rho_loss import IrreducibleLosses, RhoLoss
from loop.selectors.rs2 import RS2
from loop.selectors.sampling import WeightedRandom, weighted_permutation
from loop.selectors.selective_backprop import SelectiveBackprop
from loop.selectors.stale_selective_backprop import StaleSelectiveBackprop

__all__ = [
    "Selector", "Shuffle", "ShuffleAA", "Freeze", "chunk", "describe", "from_string", "register", "registered",
    "Homogeneous", "Heterogeneous", "LossSorted", "Curriculum", "OnlineBatchSelection", "WeightedRandom",
    "weighted_permutation", "DynamicBatchSize", "DyBAT", "ImportanceSampling", "SelectiveBackprop",
    "StaleSelectiveBackprop", "InfoBatch", "KAKURENBO", "OrderedSGD", "RandomDrop", "RhoLoss", "IrreducibleLosses",
    "RS2", "GradMatchPB", "CRAIGPB", "DivBS",
]
