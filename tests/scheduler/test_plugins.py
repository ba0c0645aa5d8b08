"""One block per plugin: filters' verdicts and reasons, scores' order."""

from sched_helpers import cache_with, node, pod

from kubelite.scheduler.framework import SKIP, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE
from kubelite.scheduler.plugins import (
    InterPodAffinity,
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
    NodeUnschedulable,
    PodTopologySpread,
    TaintToleration,
)
from kubelite.scheduler.podinfo import PodInfo


def run_filter(plugin, p, cache, node_name):
    state = {}
    info = PodInfo(p)
    pre = plugin.pre_filter(state, info, cache)
    if pre is not None and pre.code == SKIP:
        return None
    return plugin.filter(state, info, cache.nodes[node_name])


def test_node_name():
    c = cache_with([node("a"), node("b")])
    p = pod("p")
    p["spec"]["nodeName"] = "a"
    assert run_filter(NodeName(), p, c, "a") is None
    st = run_filter(NodeName(), p, c, "b")
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ("node(s) didn't match the requested node name",)


def test_node_unschedulable():
    c = cache_with([node("a", unschedulable=True)])
    st = run_filter(NodeUnschedulable(), pod("p"), c, "a")
    assert st.reasons == ("node(s) were unschedulable",)
    tolerant = pod("q", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                      "effect": "NoSchedule"}])
    assert run_filter(NodeUnschedulable(), tolerant, c, "a") is None


def test_node_resources_fit():
    c = cache_with([node("a", cpu="1", memory="1Gi", pods=2)], [pod("x", "600m", "512Mi", node_name="a")])
    assert run_filter(NodeResourcesFit(), pod("p", "400m", "512Mi"), c, "a") is None
    st = run_filter(NodeResourcesFit(), pod("p", "500m", "600Mi"), c, "a")
    assert st.code == UNSCHEDULABLE
    assert st.reasons == ("Insufficient cpu", "Insufficient memory")
    # more than the node has at all: preemption cannot help
    st = run_filter(NodeResourcesFit(), pod("p", "2"), c, "a")
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE
    c.add_pod(pod("y", node_name="a"))
    st = run_filter(NodeResourcesFit(), pod("p"), c, "a")
    assert st.reasons == ("Too many pods",)


def test_node_resources_fit_extended_and_init_containers():
    n = node("a", cpu="2")
    n["status"]["allocatable"]["example.com/gpu"] = "1"
    c = cache_with([n])
    p = pod("p")
    p["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "2"}}
    assert run_filter(NodeResourcesFit(), p, c, "a").reasons == ("Insufficient example.com/gpu",)
    p = pod("p", "1")
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]
    assert run_filter(NodeResourcesFit(), p, c, "a").reasons == ("Insufficient cpu",)


def test_least_allocated_and_balanced_scores():
    c = cache_with([node("empty", cpu="4", memory="8Gi"), node("busy", cpu="4", memory="8Gi")],
                   [pod("x", "3", "1Gi", node_name="busy")])
    p = PodInfo(pod("p", "1", "1Gi"))
    fit = NodeResourcesFit()
    assert fit.score({}, p, c.nodes["empty"]) > fit.score({}, p, c.nodes["busy"])
    # empty: cpu (4000-1000)*100/4000 = 75, memory (8-1)/8 -> 87; mean 81
    assert fit.score({}, p, c.nodes["empty"]) == 81
    bal = NodeResourcesBalancedAllocation()
    # empty: fractions .25 and .125 -> std .0625 -> 93
    assert bal.score({}, p, c.nodes["empty"]) == 93
    assert bal.score({}, p, c.nodes["busy"]) < 93


def test_taint_toleration_filter_and_score():
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    c = cache_with([node("cp", taints=[taint]), node("soft", taints=[{"key": "k", "value": "v",
                                                                      "effect": "PreferNoSchedule"}]),
                    node("plain")])
    st = run_filter(TaintToleration(), pod("p"), c, "cp")
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }",)
    tol = pod("q", tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}])
    assert run_filter(TaintToleration(), tol, c, "cp") is None
    assert run_filter(TaintToleration(), pod("p"), c, "soft") is None
    tt = TaintToleration()
    state = {}
    info = PodInfo(pod("p"))
    tt.pre_score(state, info, [], c)
    scores = [tt.score(state, info, c.nodes[n]) for n in ("soft", "plain")]
    tt.normalize(state, info, scores)
    assert scores == [0, 100]


def test_not_ready_node_filtered_through_its_taint():
    c = cache_with([node("a", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])])
    st = run_filter(TaintToleration(), pod("p"), c, "a")
    assert st.reasons == ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }",)


def _affinity_pod(*exprs, fields=None):
    term = {}
    if exprs:
        term["matchExpressions"] = list(exprs)
    if fields:
        term["matchFields"] = fields
    return pod("p", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}})


def test_node_selector_and_affinity():
    c = cache_with([node("a", labels={"disk": "ssd", "gen": "5"}), node("b", labels={"disk": "hdd"})])
    na = NodeAffinity()
    sel = pod("p", nodeSelector={"disk": "ssd"})
    assert run_filter(na, sel, c, "a") is None
    assert run_filter(na, sel, c, "b").reasons == ("node(s) didn't match Pod's node affinity/selector",)
    cases = [
        ({"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}, True, False),
        ({"key": "disk", "operator": "NotIn", "values": ["ssd"]}, False, True),
        ({"key": "gen", "operator": "Exists"}, True, False),
        ({"key": "gen", "operator": "DoesNotExist"}, False, True),
        ({"key": "gen", "operator": "Gt", "values": ["4"]}, True, False),
        ({"key": "gen", "operator": "Lt", "values": ["4"]}, False, False),
    ]
    for expr, on_a, on_b in cases:
        p = _affinity_pod(expr)
        assert (run_filter(na, p, c, "a") is None) is on_a, expr
        assert (run_filter(na, p, c, "b") is None) is on_b, expr
    by_name = _affinity_pod(fields=[{"key": "metadata.name", "operator": "In", "values": ["b"]}])
    assert run_filter(na, by_name, c, "a") is not None
    assert run_filter(na, by_name, c, "b") is None
    # an empty term matches nothing
    assert run_filter(na, _affinity_pod(), c, "a") is not None


def test_node_affinity_preferred_score():
    c = cache_with([node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"})])
    p = PodInfo(pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}}
    ]}}))
    na = NodeAffinity()
    state = {}
    assert na.pre_score(state, p, [], c) is None
    scores = [na.score(state, p, c.nodes[n]) for n in ("a", "b")]
    na.normalize(state, p, scores)
    assert scores == [0, 100]


def test_node_ports():
    c = cache_with([node("a")], [pod("x", node_name="a", host_ports=[8080])])
    assert run_filter(NodePorts(), pod("p", host_ports=[8080]), c, "a").reasons == (
        "node(s) didn't have free ports for the requested pod ports",)
    assert run_filter(NodePorts(), pod("p", host_ports=[8081]), c, "a") is None
    # different host IPs do not conflict; 0.0.0.0 conflicts with every IP
    p = pod("p", node_name="a", host_ports=[9000])
    p["spec"]["containers"][0]["ports"][0]["hostIP"] = "10.0.0.1"
    c.add_pod(p)
    q = pod("q", host_ports=[9000])
    q["spec"]["containers"][0]["ports"][0]["hostIP"] = "10.0.0.2"
    assert run_filter(NodePorts(), q, c, "a") is None
    assert run_filter(NodePorts(), pod("r", host_ports=[9000]), c, "a") is not None


def _spread_pod(name, max_skew=1, key="zone", when="DoNotSchedule", min_domains=None):
    c = {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
         "labelSelector": {"matchLabels": {"app": "web"}}}
    if min_domains:
        c["minDomains"] = min_domains
    return pod(name, labels={"app": "web"}, topologySpreadConstraints=[c])


def test_pod_topology_spread_filter():
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}), node("c")]
    existing = [pod("w1", labels={"app": "web"}, node_name="a"), pod("w2", labels={"app": "web"}, node_name="a")]
    c = cache_with(nodes, existing)
    pts = PodTopologySpread()
    st = run_filter(pts, _spread_pod("p"), c, "a")
    assert st.code == UNSCHEDULABLE
    assert st.reasons == ("node(s) didn't match pod topology spread constraints",)
    assert run_filter(pts, _spread_pod("p"), c, "b") is None
    st = run_filter(pts, _spread_pod("p"), c, "c")
    assert st.reasons == ("node(s) didn't match pod topology spread constraints (missing required label)",)
    assert run_filter(pts, _spread_pod("p", max_skew=3), c, "a") is None
    # minDomains 3 with 2 zones: the global minimum counts as 0
    assert run_filter(pts, _spread_pod("p", max_skew=2, min_domains=3), c, "b") is None
    assert run_filter(pts, _spread_pod("p", max_skew=2, min_domains=3), c, "a") is not None


def test_pod_topology_spread_score():
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"})]
    c = cache_with(nodes, [pod("w1", labels={"app": "web"}, node_name="a")])
    pts = PodTopologySpread()
    p = PodInfo(_spread_pod("p", when="ScheduleAnyway"))
    state = {}
    assert pts.pre_score(state, p, [], c) is None
    scores = [pts.score(state, p, c.nodes[n]) for n in ("a", "b")]
    pts.normalize(state, p, scores)
    assert scores[1] > scores[0]


def _aff(kind, labels, key="kubernetes.io/hostname", required=True, weight=0):
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": key}
    if required:
        return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight,
                                                                        "podAffinityTerm": term}]}}


def test_inter_pod_affinity_required():
    nodes = [node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z1"}), node("c", labels={"zone": "z2"})]
    c = cache_with(nodes, [pod("db", labels={"app": "db"}, node_name="a")])
    ipa = InterPodAffinity()
    with_db = pod("p", affinity=_aff("podAffinity", {"app": "db"}, key="zone"))
    assert run_filter(ipa, with_db, c, "b") is None
    st = run_filter(ipa, with_db, c, "c")
    assert st.code == UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ("node(s) didn't match pod affinity rules",)
    away = pod("p", affinity=_aff("podAntiAffinity", {"app": "db"}))
    assert run_filter(ipa, away, c, "a").reasons == ("node(s) didn't match pod anti-affinity rules",)
    assert run_filter(ipa, away, c, "b") is None
    # the first pod of a group that selects itself is not stuck
    first = pod("p", labels={"app": "cache"}, affinity=_aff("podAffinity", {"app": "cache"}))
    assert run_filter(ipa, first, c, "a") is None


def test_inter_pod_affinity_existing_anti_affinity():
    nodes = [node("a"), node("b")]
    loner = pod("loner", node_name="a", affinity=_aff("podAntiAffinity", {"app": "web"}))
    c = cache_with(nodes, [loner])
    ipa = InterPodAffinity()
    web = pod("p", labels={"app": "web"})
    assert run_filter(ipa, web, c, "a").reasons == ("node(s) didn't satisfy existing pods anti-affinity rules",)
    assert run_filter(ipa, web, c, "b") is None
    assert run_filter(ipa, pod("other"), c, "a") is None


def test_inter_pod_affinity_preferred_score():
    c = cache_with([node("a"), node("b")], [pod("db", labels={"app": "db"}, node_name="b")])
    ipa = InterPodAffinity()
    p = PodInfo(pod("p", affinity=_aff("podAffinity", {"app": "db"}, required=False, weight=50)))
    state = {}
    assert ipa.pre_score(state, p, [], c) is None
    scores = [ipa.score(state, p, c.nodes[n]) for n in ("a", "b")]
    ipa.normalize(state, p, scores)
    assert scores == [0, 100]
