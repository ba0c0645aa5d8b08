"""kube-scheduler for kubelite: `await run_scheduler(client, stop=stop_event, config=SchedulerConfig())`."""

from .config import SchedulerConfig
from .scheduler import Scheduler, run_scheduler

__all__ = ["Scheduler", "SchedulerConfig", "run_scheduler"]
