"""RHO-LOSS's irreducible losses, computed once and reused by many fits (:meth:`loop.selectors.RhoLoss.fit_irreducible`)."""

import dataclasses
import hashlib
import math
import os
import typing

import numpy as np

#: The version of :meth:`IrreducibleLosses.save`'s file layout.
IRREDUCIBLE_FORMAT = 1


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class IrreducibleLosses:
    """RhoLoss's irreducible losses, computed once (:meth:`RhoLoss.fit_irreducible`) and reused by many fits.

    The holdout the irreducible-loss (IL) model trained on, and its losses on
    the other training rows: what ``RhoLoss.on_train_begin`` computes, and
    what ``RhoLoss(irreducible=...)`` uses instead of computing it.  Frozen,
    its arrays read-only; :meth:`save` and :meth:`load` keep it in one
    ``.npz`` file.

    Attributes:
        holdout: int64, the sorted indices of the holdout rows.
        losses: float32 ``[num_samples - len(holdout)]``, the IL losses of the
            other rows, in increasing index order (:attr:`rest`).
        seconds: the seconds it took to split the holdout, fit the IL model
            and compute its losses.
        seed: the loop seed it was computed for (``fit_irreducible``'s
            ``seed``), None when unknown.

    Raises:
        ValueError: arrays of the wrong kind, repeated, unsorted or
            out-of-range holdout indices, or a negative or non-finite ``seconds``.
    """

    holdout: np.ndarray
    losses: np.ndarray
    seconds: float
    seed: typing.Optional[int] = None

    def __post_init__(self):
        holdout, losses = np.asarray(self.holdout), np.asarray(self.losses)
        if holdout.ndim != 1 or (holdout.size and holdout.dtype.kind not in "iu"):
            raise ValueError(f"IrreducibleLosses: holdout must be a 1-D integer index array, got shape "
                             f"{holdout.shape} and dtype {holdout.dtype}")
        if losses.ndim != 1 or (losses.size and losses.dtype.kind != "f"):
            raise ValueError(f"IrreducibleLosses: losses must be a 1-D float array, got shape {losses.shape} and "
                             f"dtype {losses.dtype}")
        holdout = holdout.astype(np.int64)
        n = len(holdout) + len(losses)
        if holdout.size and (np.any(np.diff(holdout) <= 0) or holdout[0] < 0 or holdout[-1] >= n):
            raise ValueError(f"IrreducibleLosses: holdout must hold sorted, distinct indices in [0, {n}) "
                             f"(len(holdout) + len(losses)), got {holdout[:5].tolist()}...")
        seconds = self.seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.number)) or not (
                math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"IrreducibleLosses: seconds must be a finite number >= 0, got {seconds!r}")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"IrreducibleLosses: seed must be an integer or None, got {seed!r}")
        for name, value in (("holdout", holdout), ("losses", losses.astype(np.float32))):  # copies, both
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "seconds", float(seconds))
        object.__setattr__(self, "seed", None if seed is None else int(seed))

    @property
    def num_samples(self):
        """The training-set size the losses are for: holdout and rest together."""
        return len(self.holdout) + len(self.losses)

    @property
    def rest(self):
        """The sorted indices of the rows that are not in the holdout (those of :attr:`losses`)."""
        return np.setdiff1d(np.arange(self.num_samples), self.holdout)

    def table(self):
        """float32 ``[num_samples]``: the IL loss of every row, NaN on the holdout (RhoLoss's device table)."""
        table = np.full(self.num_samples, np.nan, np.float32)
        table[self.rest] = self.losses
        return table

    @classmethod
    def from_table(cls, holdout, table, seconds, seed=None):
        """From the holdout and a ``[num_samples]`` table (NaN on the holdout), as ``RhoLoss`` keeps them."""
        table = np.asarray(table, np.float32)
        rest = np.ones(len(table), bool)
        rest[np.asarray(holdout)] = False
        return cls(np.asarray(holdout), table[rest], seconds, seed)

    def fingerprint(self):
        """12 hex digits of a SHA-256 of the holdout and the losses: the same for equal results, in any process."""
        digest = hashlib.sha256(np.ascontiguousarray(self.holdout, "<i8").tobytes())
        digest.update(np.ascontiguousarray(self.losses, "<f4").tobytes())
        return digest.hexdigest()[:12]

    def save(self, path):
        """Writes it to ``path`` (an ``.npz`` file; written to a temporary file, then renamed over ``path``).

        Returns:
            ``path``.
        """
        path = os.fspath(path)
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as f:
                np.savez(f, format=np.int64(IRREDUCIBLE_FORMAT), holdout=self.holdout, losses=self.losses,
                         seconds=np.float64(self.seconds), seed=np.int64(-1 if self.seed is None else self.seed))
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        return path

    @classmethod
    def load(cls, path):
        """Reads what :meth:`save` wrote.

        Raises:
            ValueError: no such file, or not a file :meth:`save` wrote; naming the path.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ValueError(f"irreducible losses {path!r}: no such file; write one with "
                             "RhoLoss(...).fit_irreducible(x, y, model=..., ...).save(path)")
        try:
            f = np.load(path, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise ValueError(f"it holds a single {type(f).__name__}, not an .npz archive")
            with f:
                version = int(f["format"])
                if version != IRREDUCIBLE_FORMAT:
                    raise ValueError(f"format {version}, this version reads format {IRREDUCIBLE_FORMAT}")
                seed = int(f["seed"])
                return cls(f["holdout"], f["losses"], float(f["seconds"]), None if seed < 0 else seed)
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"irreducible losses {path!r} is not a file IrreducibleLosses.save wrote ({err})") from err

    def __deepcopy__(self, memo):
        return self  # frozen, with read-only arrays: copies can share it

    def __repr__(self):
        seed = "" if self.seed is None else f", seed={self.seed}"
        return (f"IrreducibleLosses(num_samples={self.num_samples}, holdout={len(self.holdout)}, "
                f"seconds={self.seconds:.3g}{seed}, fingerprint={self.fingerprint()!r})")


__all__ = ["IRREDUCIBLE_FORMAT", "IrreducibleLosses"]
