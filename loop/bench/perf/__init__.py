"""The performance benchmarks: the loop's speed against ``model.fit`` (:mod:`~loop.bench.perf.throughput`), streamed
data against resident data (:mod:`~loop.bench.perf.streaming`) and each selector's cost per step
(:mod:`~loop.bench.perf.overhead`).  ``python -m loop.bench throughput | overhead`` runs them."""
