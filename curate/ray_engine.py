"""`curate score --engine ray`: batches of episodes are scored by Ray actors (CPU or GPU, local or on a cluster) and
stream back, as they finish, to the single index writer in the driver."""

import socket
from collections.abc import Iterator

from curate.errors import CurateError
from curate.index import FailureRow, ScoreRow
from curate.records import EpisodeInfo
from curate.sampling import Sampling

IN_FLIGHT = 2  # batches queued per actor: one scoring, one waiting, so no actor idles between batches
ACTOR_NAME = "curate-scorer-{}"


class ScoringWorker:
    """One Ray actor: opens the dataset and the model once, then decodes and scores the batches it is sent."""

    def __init__(self, dataset: str, model: str | None, device: str, cameras: tuple[str, ...], sampling: Sampling, threads: int):
        import torch

        from curate import lerobot_io
        from curate.scorers import open_scorer

        if threads:
            torch.set_num_threads(threads)  # one per CPU Ray gave this actor, so actors do not oversubscribe cores
        self.ds = lerobot_io.open_dataset(dataset)
        self.dataset = str(lerobot_io.dataset_root(self.ds))
        self.scorer = open_scorer(model, device)
        self.cameras, self.sampling = cameras, sampling

    def score(self, batch: list[EpisodeInfo], todo: dict[int, list[str]], run_id: str) -> tuple[list[ScoreRow], list[FailureRow]]:
        from curate.batches import batch_results, decode_batch

        return batch_results(self.scorer, batch, decode_batch(self.ds, batch, self.cameras, self.sampling), todo, self.dataset, run_id, self.sampling)


def connect(address: str | None, workers: int) -> bool:
    """Join the cluster at `address`, or start a local Ray with one CPU per worker. True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        raise CurateError(f"cannot reach the Ray cluster at {address!r} ({str(err).splitlines()[0]}); check --address, or omit it to start Ray on this machine") from None
    return True


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS frame


def check(address: str | None, timeout: float = 5.0) -> None:
    """Before any work: Ray is installed, and `address` answers. ray.init waits for minutes on an address that does
    not; Ray's head (GCS, or the ray:// client server) speaks gRPC, so a server there answers the HTTP/2 preface with
    a SETTINGS frame, and anything else fails here in seconds."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise CurateError("--engine ray needs Ray; install it with pip install 'curate[ray]'") from None
    if address is None or address == "auto":
        return  # Ray looks up the cluster started on this machine, and says so itself when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise CurateError(f"--address {address!r} is not host:port (or ray://host:port, or auto); e.g. --address 10.0.0.5:6379")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.sendall(HTTP2_PREFACE)
            reply = conn.recv(9)  # a frame header: length (3 bytes), type (1 byte: 4 is SETTINGS), ...
        problem = None if len(reply) >= 4 and reply[3] == 4 else "no Ray (gRPC) server answered there"
    except OSError as err:
        problem = err.strerror or type(err).__name__
    if problem:
        raise CurateError(f"cannot reach the Ray cluster at {address!r} ({problem}); check --address and that the head node is up, or omit --address to start Ray on this machine")


def ray_results(job, batches: list[list[EpisodeInfo]], todo: dict[int, list[str]], run_id: str) -> Iterator[tuple[list[ScoreRow], list[FailureRow]]]:
    """Connect now, then yield (rows, failures) per batch as actors finish."""
    started = connect(job.config.address, job.config.workers)
    return _stream(job, batches, todo, run_id, started)


def _stream(job, batches: list[list[EpisodeInfo]], todo: dict[int, list[str]], run_id: str, started: bool) -> Iterator[tuple[list[ScoreRow], list[FailureRow]]]:
    import ray

    config = job.config
    gpu = config.device.startswith("cuda")
    worker = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0)(ScoringWorker)
    actors = [worker.options(name=ACTOR_NAME.format(i)).remote(str(job.root), config.model, "cuda" if gpu else "cpu", job.cameras, config.sampling, 0 if gpu else 1) for i in range(config.workers)]
    queue = list(batches)
    pending: dict = {}

    def submit(actor) -> None:
        batch = queue.pop(0)
        pending[actor.score.remote(batch, {e.episode_index: todo[e.episode_index] for e in batch}, run_id)] = actor

    try:
        for actor in actors:
            for _ in range(IN_FLIGHT):
                if queue:
                    submit(actor)
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(ready)
            try:
                result = ray.get(ready)
            except ray.exceptions.RayActorError as err:
                raise CurateError(f"a Ray worker died while scoring ({type(err).__name__}); every finished batch is in the index: run the same command again to score the rest") from None
            except ray.exceptions.RayTaskError as err:
                raise CurateError(f"a Ray worker failed: {str(err.cause) if err.cause else str(err).splitlines()[0]}") from None
            if queue:
                submit(actor)
            yield result
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
