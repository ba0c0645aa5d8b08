"""The web dashboard (tutorial B): token login, browse, logs, scale, delete, create from YAML, over HTTPS.

    from kubelite.dashboard import DashboardConfig, run_dashboard, build_app

`run_dashboard` is the `kubelite up` add-on (namespace and NodePort Service `kubernetes-dashboard`, see
`addon`); `build_app` is the aiohttp application alone. Every API call it makes for a user carries that
user's bearer token, so RBAC decides what the dashboard may show or change.
"""

from .addon import DEFAULT_NODE_PORT, NAMESPACE, SERVICE, DashboardConfig, run_dashboard
from .server import build_app
from .userapi import ApiServer

__all__ = ["DashboardConfig", "run_dashboard", "build_app", "ApiServer", "DEFAULT_NODE_PORT", "NAMESPACE",
           "SERVICE"]
