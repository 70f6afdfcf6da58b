"""Independent jobs fanned out as Ray tasks (a cluster address, or "local" to start one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from privaudit.core.errors import InputError


def ray_map(
    address: str,
    function: Callable,
    jobs: Iterable[Sequence],
    *,
    gpus: float = 0,
    shared: Sequence = (),
) -> Iterator:
    """function(*shared, *job) for each job as a Ray task holding `gpus` GPUs; the `shared`
    arguments are put in the object store once. Yields the results in the jobs' order."""
    try:
        import ray
    except ImportError as exc:
        raise InputError("--ray needs the ray extra: pip install 'privaudit-attacks[ray]'") from exc
    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address,
            include_dashboard=False,
            log_to_driver=False,
        )
    refs = [ray.put(value) for value in shared]
    remote = ray.remote(num_gpus=gpus)(function)
    futures = [remote.remote(*refs, *job) for job in jobs]
    for future in futures:
        yield ray.get(future)
