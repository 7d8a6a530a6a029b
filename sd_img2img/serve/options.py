"""How the Ray backend's model workers are laid out: where the cluster is, how many replicas each model gets (fixed,
or autoscaled between a minimum and a maximum), what each replica holds (CPUs, GPUs) and how many runs it takes at
once. Defaults and limits are ``config``'s; nothing here imports Ray."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sd_img2img.config import RAY_HEALTH_CHECK_SECONDS, RAY_MAX_REPLICAS


@dataclass(frozen=True)
class RayOptions:
    """The Ray backend's layout, as the flags ask for it (``settings.add_ray_flags``).

    Args:
        address: a running cluster to join (``host:port`` of its head, ``ray://host:port``, or ``auto``); None starts
            a local instance on loopback.
        replicas: replicas per model when not autoscaling.
        min_replicas, max_replicas: autoscaling between these (``max_replicas`` set turns it on).
        target_ongoing: autoscaling's target of runs in progress per replica.
        max_ongoing: runs one replica takes at once (1: a GPU denoises one run at a time; more wait in Serve's queue).
        cpus_per_replica: CPUs Ray reserves for each replica (on a CPU it also sets the replica's torch threads).
        gpus_per_replica: GPUs each replica holds (fractions allowed); None: 1 where the cluster has GPUs, else 0.
        num_cpus: the local instance's CPUs (None: all of this machine's); ignored when joining a cluster.
    """

    address: str | None = None
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int | None = None
    target_ongoing: float = 1.0
    max_ongoing: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float | None = None
    num_cpus: int | None = None

    def __post_init__(self):
        check_layout(self)

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None

    @property
    def replicas_at_most(self) -> int:
        """Replicas a model can have at once: the fixed count, or autoscaling's maximum."""
        return self.max_replicas if self.autoscaling else self.replicas

    def capacity(self, models: int) -> int:
        """Runs the workers take at once for ``models`` models: replicas (at most) × runs per replica, per model."""
        return models * self.replicas_at_most * self.max_ongoing

    def deployment_options(self, gpus: float) -> dict[str, Any]:
        """``serve.deployment(...).options(...)`` for one model's workers holding ``gpus`` GPUs each."""
        options: dict[str, Any] = dict(
            ray_actor_options={"num_cpus": self.cpus_per_replica, "num_gpus": gpus},
            max_ongoing_requests=self.max_ongoing,
            max_constructor_retry_count=3,  # a model that cannot load fails in three tries, not Serve's twenty
            health_check_period_s=RAY_HEALTH_CHECK_SECONDS,
        )
        if self.autoscaling:
            options.update(
                num_replicas="auto",
                autoscaling_config=dict(
                    min_replicas=self.min_replicas,
                    max_replicas=self.max_replicas,
                    target_ongoing_requests=self.target_ongoing,
                ),
            )
        else:
            options.update(num_replicas=self.replicas)
        return options

    def replace(self, **changes) -> RayOptions:
        return dataclasses.replace(self, **changes)


def check_layout(o: RayOptions) -> None:
    """Each number in its range, autoscaling's minimum at most its maximum; ``ValueError`` naming the value and its
    flag."""
    if not 1 <= o.replicas <= RAY_MAX_REPLICAS:
        raise ValueError(f"replicas (--ray-replicas) must be 1 to {RAY_MAX_REPLICAS}, not {o.replicas}")
    if not 0 <= o.min_replicas <= RAY_MAX_REPLICAS:
        raise ValueError(f"min replicas (--ray-min-replicas) must be 0 to {RAY_MAX_REPLICAS}, not {o.min_replicas}")
    if o.max_replicas is not None and not max(1, o.min_replicas) <= o.max_replicas <= RAY_MAX_REPLICAS:
        raise ValueError(
            f"max replicas (--ray-max-replicas) must be {max(1, o.min_replicas)} (at least the min replicas, {o.min_replicas}) to "
            f"{RAY_MAX_REPLICAS}, not {o.max_replicas}"
        )
    if o.target_ongoing <= 0:
        raise ValueError(f"target ongoing requests (--ray-target-ongoing) must be above 0, not {o.target_ongoing:g}")
    if o.max_ongoing < 1:
        raise ValueError(f"max ongoing requests (--ray-max-ongoing) must be 1 or more, not {o.max_ongoing}")
    if o.cpus_per_replica <= 0:
        raise ValueError(f"CPUs per replica (--ray-cpus-per-replica) must be above 0, not {o.cpus_per_replica:g}")
    if o.gpus_per_replica is not None and o.gpus_per_replica < 0:
        raise ValueError(f"GPUs per replica (--ray-gpus-per-replica) must be 0 or more, not {o.gpus_per_replica:g}")
    if o.num_cpus is not None and o.num_cpus < 1:
        raise ValueError(f"the local instance's CPUs (--ray-num-cpus) must be 1 or more, not {o.num_cpus}")
