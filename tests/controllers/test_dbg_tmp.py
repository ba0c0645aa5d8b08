import asyncio, json
from controllers.conftest import *
from kubelite.controllers import deployment_util as du

async def test_dbg(api, ns, fresh_cluster):
    k = FakeKubelet(api, ns).start()
    await api.create(DEPLOYMENTS, deployment("web", replicas=1), ns)
    await asyncio.sleep(1.5)
    await kubectl(fresh_cluster, "set", "image", "deployment/web", "c=nginx:1.16.1", "-n", ns, check=True)
    await asyncio.sleep(1.5)
    await kubectl(fresh_cluster, "rollout", "undo", "deployment/web", "-n", ns, check=True)
    await asyncio.sleep(1.5)
    d = await api.get(DEPLOYMENTS, ns, "web")
    for rs in (await api.list(REPLICASETS, ns))["items"]:
        print(rs["metadata"]["name"], du.equal_ignore_hash(rs["spec"]["template"], d["spec"]["template"]))
        print(json.dumps(du._without_hash(rs["spec"]["template"]), sort_keys=True))
    print("D", json.dumps(d["spec"]["template"], sort_keys=True))
    await k.stop()
