"""Every knob of the scheduler in one dataclass (timings in seconds), defaults as upstream's kube-scheduler."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SchedulerConfig:
    scheduler_name: str = "default-scheduler"
    # scheduling queue
    pod_initial_backoff: float = 1.0
    pod_max_backoff: float = 10.0
    pod_max_in_unschedulable: float = 300.0
    flush_backoff_interval: float = 1.0
    flush_unschedulable_interval: float = 30.0
    # 0 = adaptive (50% at 100 nodes, down to 5%), as upstream's percentageOfNodesToScore
    percentage_of_nodes_to_score: int = 0
    min_feasible_nodes_to_find: int = 100
    # binding runs beside the scheduling loop, as upstream's binding cycle goroutines
    max_inflight_bindings: int = 32  # more in flight only queues up in the API server (measured)
    preemption: bool = True
    # leader election through the Lease kube-system/kube-scheduler
    leader_elect: bool = True
    lease_namespace: str = "kube-system"
    lease_name: str = "kube-scheduler"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = ""
    # informer resync / random seed (tests pin it)
    seed: int | None = None
