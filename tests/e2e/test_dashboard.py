"""Tutorial B end to end: `kubelite up` with its dashboard, the article's admin-user, and a real headless
Chromium (Debian `chromium` + `chromium-driver`, driven by selenium) signing in and working through the UI."""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import ssl
import tempfile
import time
import urllib.request

import pytest

from kubectl_output import rows
from kubelite_cluster import Cluster, free_port
from tutorial_manifests import NGINX_DEPLOYMENT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # pragma: no cover - depends on the machine
    webdriver = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    webdriver is None or not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="needs Debian chromium + chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) and the selenium "
           "package: apt-get install chromium chromium-driver; pip install selenium")

ADMIN_USER = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: admin-user
  namespace: kubernetes-dashboard
"""
ADMIN_USER_ROLE_BINDING = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: admin-user
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- kind: ServiceAccount
  name: admin-user
  namespace: kubernetes-dashboard
"""
# since v1.24 no token Secret is made by itself: this is how one asks for the article's legacy Secret
ADMIN_USER_SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: admin-user-token
  namespace: kubernetes-dashboard
  annotations:
    kubernetes.io/service-account.name: admin-user
type: kubernetes.io/service-account-token
"""


def free_node_port() -> int:
    """A port in the default NodePort range that nothing on 127.0.0.1 holds now."""
    for _ in range(200):
        port = random.randint(30000, 32767)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free node port")


def wait_for(fn, timeout=20.0, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s; last: {last!r}")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    base = tmp_path_factory.mktemp("dashboard")
    node_port = free_node_port()
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "cache"), command="up",
                extra_args=["--node-runtime", "simulated", "--cluster-dns-port", "0", "--ingress-http-port", "0",
                            "--ingress-https-port", "0", "--dashboard-port", str(node_port),
                            "--dashboard-token-ttl", "43200"])
    c.start()
    c.node_port = node_port  # type: ignore[attr-defined]
    ctx = ssl.create_default_context(cafile=os.path.join(c.data_dir, "pki", "ca.crt"))

    def serving():  # the dashboard's certificate is from the cluster CA, for 127.0.0.1
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{node_port}/login", context=ctx, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(serving, timeout=30)
    except AssertionError:
        c.stop()
        raise AssertionError(f"dashboard not serving: {c.log()}") from None
    yield c
    c.stop()


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="kubelite-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--ignore-certificate-errors", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.accept_insecure_certs = True
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    driver.implicitly_wait(5)  # find_element waits for the page a click opened
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def sign_in(driver, base: str, token: str) -> None:
    driver.get(base + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "signin").click()
    # the click returns before the form's answer is in: wait for the signed-in page or the login error, or a
    # page opened next could race the session cookie
    wait_for(lambda: driver.find_elements(By.ID, "user") or driver.find_elements(By.ID, "login-error"))


def test_dashboard_in_a_real_browser(up, browser, tmp_path):
    base = f"https://127.0.0.1:{up.node_port}"
    # first page load, cold (fresh profile, new TLS connection), as the browser's navigation timing measures it
    browser.get(base + "/login")
    cold_ms = browser.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                     "return n.loadEventEnd - n.startTime;")
    (tmp_path / "figures.txt").write_text(f"cold_login_page_ms={cold_ms:.0f}\n")
    print(f"first page load (cold, HTTPS): {cold_ms:.0f} ms")
    svc = up.kubectl("-n", "kubernetes-dashboard", "get", "svc", check=True).stdout
    row = next(r for r in rows(svc) if r[0] == "kubernetes-dashboard")
    assert row[1] == "NodePort" and row[4] == f"443:{up.node_port}/TCP", svc

    # the article: kubectl create -f admin-user.yaml -f admin-user-role-binding.yaml
    (tmp_path / "admin-user.yaml").write_text(ADMIN_USER)
    (tmp_path / "admin-user-role-binding.yaml").write_text(ADMIN_USER_ROLE_BINDING)
    out = up.kubectl("create", "-f", str(tmp_path / "admin-user.yaml"), "-f",
                     str(tmp_path / "admin-user-role-binding.yaml"), check=True).stdout
    assert "serviceaccount/admin-user created" in out
    token = up.kubectl("-n", "kubernetes-dashboard", "create", "token", "admin-user", check=True).stdout.strip()
    (tmp_path / "nginx-deployment.yaml").write_text(NGINX_DEPLOYMENT)
    up.kubectl("apply", "-f", str(tmp_path / "nginx-deployment.yaml"), check=True)
    pod = wait_for(lambda: next((r[0] for r in rows(up.kubectl("get", "pods").stdout)
                                 if r[0].startswith("nginx-deployment-") and r[2] == "Running"), None))

    # a bad token first: the login page says why
    sign_in(browser, base, "not-a-token")
    assert "Unauthorized (401)" in browser.find_element(By.ID, "login-error").text

    sign_in(browser, base, token)
    assert "system:serviceaccount:kubernetes-dashboard:admin-user" in browser.find_element(By.ID, "user").text
    session = browser.get_cookie("__Host-kubelite-dashboard")
    assert session and session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"

    browser.get(base + "/ns/default/pods")
    browser.find_element(By.LINK_TEXT, pod).click()
    assert f"Pod {pod}" in browser.find_element(By.TAG_NAME, "h2").text
    browser.find_element(By.LINK_TEXT, "Logs of nginx").click()
    assert browser.find_element(By.TAG_NAME, "h2").text == f"Logs of pod {pod}, container nginx"

    # live: a pod created with kubectl shows up on the open list without a reload
    browser.get(base + "/ns/default/pods")
    marker = browser.execute_script("window.__noReload = 1; return window.__noReload;")
    started = time.monotonic()
    up.kubectl("run", "live-pod", "--image=nginx", check=True)
    wait_for(lambda: browser.find_elements(By.LINK_TEXT, "live-pod"), timeout=15, interval=0.05)
    print(f"kubectl create -> pod on screen: {(time.monotonic() - started) * 1000:.0f} ms (incl. kubectl)")
    assert browser.execute_script("return window.__noReload;") == marker  # the same document: no reload
    browser.save_screenshot(str(tmp_path / "live-pods.png"))

    # logs follow live, with the container picker and a download link
    browser.get(base + f"/ns/default/pods/{pod}/logs?container=nginx")
    # simulated nodes keep no container logs: the page says so (API 404) and still offers picker and download
    assert browser.find_elements(By.ID, "logs") or browser.find_elements(By.ID, "api-error"), \
        browser.page_source[-800:]
    assert browser.find_element(By.ID, "container").get_attribute("value") == "nginx"
    assert "/logs/download" in browser.find_element(By.ID, "download").get_attribute("href")

    # edit replicas through YAML: dry run with a diff, then apply
    browser.get(base + "/ns/default/deployments/nginx-deployment/edit")
    area = browser.find_element(By.ID, "edit-yaml")
    text = area.get_attribute("value")
    browser.execute_script("arguments[0].value = arguments[1];", area, re.sub(r"(?m)^  replicas: \d+$",
                                                                              "  replicas: 3", text, count=1))
    browser.find_element(By.ID, "preview").click()
    assert "+  replicas: 3" in browser.find_element(By.ID, "diff").text
    browser.find_element(By.ID, "apply").click()
    assert "edited" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert up.kubectl("get", "deployment", "nginx-deployment", "-o", "jsonpath={.spec.replicas}",
                      check=True).stdout == "3"

    browser.get(base + "/ns/default/deployments/nginx-deployment")
    replicas = browser.find_element(By.ID, "replicas")
    replicas.clear()
    replicas.send_keys("2")
    browser.find_element(By.ID, "scale").click()
    assert "scaled to 2" in browser.find_element(By.CSS_SELECTOR, ".flash").text
    assert up.kubectl("get", "deployment", "nginx-deployment", "-o", "jsonpath={.spec.replicas}",
                      check=True).stdout == "2"

    browser.get(base + "/create")
    browser.find_element(By.ID, "yaml-input").send_keys(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-dashboard\ndata:\n  greeting: hello\n")
    browser.find_element(By.ID, "upload").click()
    assert "configmap/from-dashboard created" in browser.find_element(By.ID, "create-results").text
    assert up.kubectl("get", "configmap", "from-dashboard", "-o", "jsonpath={.data.greeting}",
                      check=True).stdout == "hello"

    browser.find_element(By.ID, "logout").click()
    assert browser.find_element(By.ID, "token")  # back on the login page
    browser.get(base + "/ns/default/pods")
    assert "/login" in browser.current_url

    # the article's legacy way: the token from `kubectl describe secret` works too
    up.kubectl("create", "-f", "-", input=ADMIN_USER_SECRET, check=True)
    names = wait_for(lambda: [r[0] for r in rows(up.kubectl("-n", "kubernetes-dashboard", "get", "secret").stdout)
                              if "admin-user" in r[0] and r[2] != "0"])
    described = up.kubectl("-n", "kubernetes-dashboard", "describe", "secret", names[0], check=True).stdout
    legacy = re.search(r"^token:\s+(\S+)$", described, re.M).group(1)
    sign_in(browser, base, legacy)
    assert "admin-user" in browser.find_element(By.ID, "user").text
    browser.find_element(By.ID, "logout").click()
    assert browser.find_element(By.ID, "token")

    # a ServiceAccount without rights sees the API server's refusal
    up.kubectl("-n", "default", "create", "serviceaccount", "viewer-none", check=True)
    weak = up.kubectl("-n", "default", "create", "token", "viewer-none", check=True).stdout.strip()
    sign_in(browser, base, weak)
    browser.get(base + "/ns/default/pods")
    # the Chinese page, from the switcher
    browser.get(base + "/lang/zh")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert browser.find_element(By.ID, "logout").text == "退出"
    browser.save_screenshot(str(tmp_path / "chinese.png"))
    browser.get(base + "/lang/en")
    browser.get(base + "/ns/default/pods")
    assert ('pods is forbidden: User "system:serviceaccount:default:viewer-none" cannot list resource "pods" in '
            'API group "" in the namespace "default"') in browser.find_element(By.ID, "api-error").text
    browser.find_element(By.ID, "logout").click()

    # a view-only token: the edit button is disabled and says why
    up.kubectl("-n", "default", "create", "serviceaccount", "viewer", check=True)
    up.kubectl("-n", "default", "create", "rolebinding", "viewer", "--clusterrole=view",
               "--serviceaccount=default:viewer", check=True)
    sign_in(browser, base, up.kubectl("-n", "default", "create", "token", "viewer", check=True).stdout.strip())
    browser.get(base + "/ns/default/deployments/nginx-deployment")
    edit = browser.find_element(By.ID, "edit")
    assert not edit.is_enabled()
    assert "RBAC does not allow update on deployments.apps" in browser.find_element(By.ID, "edit-why").text
    assert not browser.find_element(By.ID, "scale").is_enabled()
