"""Dask execution of library mode: the model sent once per worker, batches of records as tasks, results in order.

The driver (:func:`grappa_like.library.parameterize_library`) reads the input, sends batches of
parsed molecules to the workers and writes what comes back. A worker plugin carries the model:
the scheduler hands it to every worker once (workers that join later included), and tasks look the
model up by its checksum instead of carrying it. At most ``window`` batches are submitted or
waiting to be written at any time, so the driver's memory does not grow with the library.

A task's records travel as one pickled ``bytes`` object, unpickled only on the worker. The Dask
scheduler keeps its last ``distributed.admin.low-level-log-length`` (default 1000) messages to each
worker for debugging; with the records as Python objects those messages kept every batch's
unpickled RDKit molecules alive (~29 kB each, against ~0.6 kB pickled). For a LocalCluster the
scheduler runs in the driver process, so its memory grew with the library. ``connect`` also
shortens that log to 100 messages for the LocalCluster it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
from collections import deque

import dask
from distributed import Client, LocalCluster, WorkerPlugin

_MODELS: dict = {}  # model key -> Model, in each worker process


def model_key(model) -> str:
    """Key of a model on the workers: its file checksum, else a sha256 of the pickled model."""
    return model.checksum or hashlib.sha256(pickle.dumps(model)).hexdigest()


class ModelPlugin(WorkerPlugin):
    """Puts one model into each worker's memory when the worker starts (or when the plugin is registered)."""

    def __init__(self, model, key: str):
        self.model, self.key = model, key

    def setup(self, worker) -> None:
        _MODELS[self.key] = self.model


def run_batch(key: str, records: bytes, output_format: str, max_atoms: int, total_charge, ood_score: bool = False):
    """Worker task: :func:`grappa_like.outputs.parameterize_records` of pickled ``records``, with the worker's model."""
    from grappa_like.outputs import parameterize_records

    if key not in _MODELS:
        raise RuntimeError(f"model {key[:16]} is not loaded on this worker (its ModelPlugin did not run)")
    return parameterize_records(_MODELS[key], pickle.loads(records), output_format, max_atoms, total_charge, ood_score)


def ordered_outcomes(client, model, batches, molecules, window: int | None = None, **options):
    """Yield ``(batch, outcomes)`` for each batch of ``batches``, in input order, computed on ``client``'s workers.

    ``molecules(batch)`` gives the (file name, Molecule) records of a batch that go to a worker;
    ``options`` are passed to :func:`run_batch`.
    """
    key = model_key(model)
    client.register_plugin(ModelPlugin(model, key), name=f"grappa_like-model-{key[:16]}")
    if window is None:
        window = max(8, 4 * sum(client.nthreads().values()))
    in_flight = deque()  # (batch, future), in input order
    batches = iter(batches)
    while True:
        while len(in_flight) < window:
            batch = next(batches, None)
            if batch is None:
                break
            records = molecules(batch)
            # pickled here, so that the scheduler handles and logs bytes, not RDKit molecules (see above)
            future = (client.submit(run_batch, key, pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL),
                                    pure=False, **options) if records else None)
            in_flight.append((batch, future))
        if not in_flight:
            return
        batch, future = in_flight.popleft()
        if future is None:
            yield batch, []
            continue
        try:
            outcomes = future.result()
        except Exception as error:
            raise RuntimeError(f"the Dask task for records {batch[0][0]}-{batch[-1][0]} (first: {batch[0][1]}) failed "
                               f"({type(error).__name__}: {error}); run the same command again to resume") from error
        yield batch, outcomes


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: a LocalCluster of ``workers`` one-thread processes here, or the scheduler at ``scheduler``."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    # the scheduler runs in this process: keep 100, not 1000, recent messages per worker (debugging history only)
    with dask.config.set({"distributed.admin.low-level-log-length": 100}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client
