"""The scheduling framework: statuses, the plugin interface, and upstream's FitError message.

A plugin implements any of the extension points below; each returns `None` for success.  Filters run in the
configured order and a node fails at the first filter that rejects it (as upstream's RunFilterPlugins), so
the reason histogram counts one plugin's reasons per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import Cache, NodeInfo
    from .podinfo import PodInfo

MAX_NODE_SCORE = 100

# status codes (upstream's framework.Code)
SUCCESS = 0
ERROR = 1
UNSCHEDULABLE = 2
UNSCHEDULABLE_AND_UNRESOLVABLE = 3
SKIP = 4


@dataclass(slots=True)
class Status:
    code: int
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @property
    def rejected(self) -> bool:
        return self.code in (UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE)


def unschedulable(plugin: str, *reasons: str) -> Status:
    return Status(UNSCHEDULABLE, reasons, plugin)


def unresolvable(plugin: str, *reasons: str) -> Status:
    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)


CycleState = dict[str, Any]


class Plugin:
    """Base class: every extension point is optional; `name` is upstream's plugin name."""

    name = ""
    weight = 0  # score weight; 0 = not a score plugin

    def pre_filter(self, state: CycleState, pod: PodInfo, cache: Cache) -> Status | None:
        """Return Status(SKIP) when the plugin has nothing to check for this pod."""
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], cache: Cache) -> Status | None:
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return 0

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        return None


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """Upstream's helper.DefaultNormalizeScore: scale to [0, 100] by the max; `reverse` flips it."""
    top = max(scores) if scores else 0
    if top == 0:
        if reverse:
            for i in range(len(scores)):
                scores[i] = MAX_NODE_SCORE
        return
    for i, s in enumerate(scores):
        v = MAX_NODE_SCORE * s // top
        scores[i] = MAX_NODE_SCORE - v if reverse else v


@dataclass
class Diagnosis:
    node_status: dict[str, Status] = field(default_factory=dict)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


class FitError(Exception):
    def __init__(self, pod: PodInfo, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return fit_error_message(self.num_all_nodes, self.diagnosis.node_status, self.diagnosis.pre_filter_msg,
                                 self.diagnosis.post_filter_msg)


def fit_error_message(num_all_nodes: int, node_status: dict[str, Status], pre_filter_msg: str = "",
                      post_filter_msg: str = "", absent_reason: str = "") -> str:
    """`0/N nodes are available: <prefilter>. <count reason, …>. <postfilter>` as upstream's FitError."""
    msg = f"0/{num_all_nodes} nodes are available:"
    if pre_filter_msg:
        msg += f" {pre_filter_msg}."
    else:
        counts: dict[str, int] = {}
        for st in node_status.values():
            for r in st.reasons:
                counts[r] = counts.get(r, 0) + 1
        if absent_reason and len(node_status) < num_all_nodes:
            counts[absent_reason] = counts.get(absent_reason, 0) + num_all_nodes - len(node_status)
        parts = sorted(f"{v} {k}" for k, v in counts.items())
        if parts:
            msg += f" {', '.join(parts)}."
    if post_filter_msg:
        msg += f" {post_filter_msg}"
    return msg


def num_feasible_nodes_to_find(num_all: int, percentage: int, min_nodes: int = 100) -> int:
    """Upstream's numFeasibleNodesToFind: all nodes below 100, else an adaptive share (≥ 5%, ≥ 100)."""
    if num_all < min_nodes or percentage >= 100:
        return num_all
    adaptive = percentage
    if adaptive <= 0:
        adaptive = 50 - num_all // 125
        if adaptive < 5:
            adaptive = 5
    n = num_all * adaptive // 100
    return max(n, min_nodes)
