"""The lab's own sentences in English and Simplified Chinese (scenario texts live in the scenario files)."""

from __future__ import annotations

import locale
import os

MESSAGES: dict[str, dict[str, str]] = {
    "story": {"en": "Story", "zh": "故事"},
    "weak_settings": {"en": "Weak settings", "zh": "弱配置"},
    "upstream_default": {"en": "Upstream default", "zh": "上游默认"},
    "attack_of": {"en": "Attack", "zh": "攻击"},
    "step": {"en": "Step", "zh": "步骤"},
    "succeeded": {"en": "ATTACK SUCCEEDED", "zh": "ATTACK SUCCEEDED（攻击成功）"},
    "blocked": {"en": "ATTACK BLOCKED", "zh": "ATTACK BLOCKED（攻击被阻止）"},
    "error": {"en": "ATTACK INCONCLUSIVE: the output matched neither the attack's nor the defense's signal",
              "zh": "ATTACK INCONCLUSIVE：输出既不符合攻击成功的信号，也不符合防御生效的信号"},
    "step_ok": {"en": "step went the attacker's way", "zh": "此步骤对攻击者有利"},
    "step_blocked": {"en": "defense signal seen", "zh": "看到防御生效的信号"},
    "step_error": {"en": "unexpected output", "zh": "出乎意料的输出"},
    "defense": {"en": "Defense", "zh": "防御"},
    "why": {"en": "Why it works", "zh": "原理"},
    "diff": {"en": "Change", "zh": "改动"},
    "restarting": {"en": "restarting the cluster with the new flags …", "zh": "用新的参数重启集群……"},
    "starting": {"en": "starting the lab cluster …", "zh": "正在启动实验集群……"},
    "ready": {"en": "cluster ready", "zh": "集群已就绪"},
    "evidence": {"en": "Evidence", "zh": "证据"},
    "audit_lines": {"en": "audit-log lines", "zh": "审计日志记录"},
    "events": {"en": "Events", "zh": "事件"},
    "none_found": {"en": "(none found)", "zh": "（未找到）"},
    "not_running": {"en": "no lab cluster running for this scenario; run `kubelite lab start {id}` first",
                    "zh": "此场景的实验集群未运行；请先执行 `kubelite lab start {id}`"},
    "needs_root": {"en": "scenario {id} needs real containers (root + runc, see `kubelite doctor`): skipped — {why}",
                   "zh": "场景 {id} 需要真实容器（root + runc，见 `kubelite doctor`）：已跳过 —— {why}"},
    "reset_done": {"en": "lab cluster stopped and its data removed (new CA and credentials next time)",
                   "zh": "实验集群已停止并删除数据（下次启动会生成新的 CA 和凭据）"},
    "next": {"en": "Next: kubelite lab attack {id}", "zh": "下一步：kubelite lab attack {id}"},
    "state_weak": {"en": "weak", "zh": "弱"},
    "state_defended": {"en": "defended", "zh": "已防御"},
    "state_default": {"en": "default", "zh": "默认"},
    "total": {"en": "total", "zh": "合计"},
}


def default_lang() -> str:
    for var in ("KUBELITE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    try:
        loc = locale.getlocale()[0] or ""
    except ValueError:
        loc = ""
    return "zh" if loc.lower().startswith("zh") else "en"


def msg(key: str, lang: str, **kw: object) -> str:
    entry = MESSAGES[key]
    return (entry.get(lang) or entry["en"]).format(**kw)
