"""client.yamlfiles: YAML files parsed by a child process give what yaml.safe_load gives, and PyYAML stays out."""

import json
import subprocess
import sys

import yaml

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: QUJD, insecure-skip-tls-verify: false}
contexts:
- {name: x, context: {cluster: c, user: u}}
current-context: x
users:
- name: u
  user: {token: "0123"}
"""
DATED = "when: 2024-01-02\n1: one\n"


def test_child_parse_matches_safe_load_and_keeps_yaml_out(tmp_path) -> None:
    kc, dated, bad = tmp_path / "kubeconfig", tmp_path / "dated.yaml", tmp_path / "bad.yaml"
    kc.write_text(KUBECONFIG)
    dated.write_text(DATED)
    bad.write_text("a: [1, 2\n")
    code = f"""
import json, os, sys
from kubelite.client import yamlfiles
yamlfiles.parse_in_child([{str(kc)!r}, {str(dated)!r}, {str(bad)!r}, "/nonexistent", ""])
first = yamlfiles.load({str(kc)!r})
first["kind"] = "changed"  # callers get copies
again = yamlfiles.load({str(kc)!r})
no_yaml = "yaml" not in sys.modules
with open({str(kc)!r}, "a") as f:
    f.write("preferences: {{}}\\n")
edited = yamlfiles.load({str(kc)!r})
dated = repr(yamlfiles.load({str(dated)!r}))
try:
    yamlfiles.load({str(bad)!r})
    err = ""
except Exception as e:
    err = type(e).__module__
print(json.dumps([again, no_yaml, edited, dated, err]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    again, no_yaml, edited, dated_repr, err = json.loads(out.splitlines()[-1])
    assert again == yaml.safe_load(KUBECONFIG)
    assert no_yaml
    assert edited == yaml.safe_load(KUBECONFIG + "preferences: {}\n")
    assert dated_repr == repr(yaml.safe_load(DATED))  # a date and an int key: parsed in-process, not via JSON
    assert err.startswith("yaml")
