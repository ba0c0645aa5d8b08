"""English and Simplified Chinese: the language comes from the `lang` cookie (the switcher), else the browser's
Accept-Language; `t(text)` translates one of the dashboard's own English strings for the current request."""

from __future__ import annotations

import contextvars

LANG_COOKIE = "__Host-kubelite-dashboard-lang"
LANGUAGES = {"en": "English", "zh": "中文"}
current: contextvars.ContextVar[str] = contextvars.ContextVar("dashboard_lang", default="en")

ZH = {
    "Sign in": "登录", "Sign out": "退出", "Bearer token": "持有者令牌（Bearer Token）",
    "Cluster": "集群", "Overview": "概览", "Workloads": "工作负载", "Service": "服务", "Config": "配置和存储",
    "Access": "访问控制", "Create": "创建", "Create from YAML": "从 YAML 创建", "Namespace": "命名空间",
    "Namespaces": "命名空间", "Nodes": "节点", "Deployments": "部署", "Replica Sets": "副本集",
    "Stateful Sets": "有状态副本集", "Daemon Sets": "守护进程集", "Jobs": "任务", "Cron Jobs": "定时任务",
    "Pods": "容器组", "Services": "服务", "Ingresses": "Ingress", "Config Maps": "配置字典", "Secrets": "保密字典",
    "Persistent Volume Claims": "持久卷声明", "Persistent Volumes": "持久卷", "Storage Classes": "存储类",
    "Service Accounts": "服务账户", "Roles": "角色", "Role Bindings": "角色绑定", "Cluster Roles": "集群角色",
    "Cluster Role Bindings": "集群角色绑定", "Custom Resource Definitions": "自定义资源定义", "Events": "事件",
    "all namespaces": "所有命名空间", "Go": "转到", "Name": "名称", "Labels": "标签", "Age": "存活时间",
    "Status": "状态", "Type": "类型", "Reason": "原因", "Message": "消息", "Object": "对象",
    "Edit YAML": "编辑 YAML", "Delete": "删除", "Scale": "伸缩", "Replicas": "副本数", "Restart": "重启",
    "Cordon": "禁止调度", "Uncordon": "允许调度", "Drain": "排空", "Logs": "日志", "Follow": "跟踪",
    "Download": "下载", "Previous container": "上一个容器", "Container": "容器", "Since": "时间范围",
    "Show": "显示", "Preview (server dry run)": "预览（服务器端试运行）", "Apply": "应用", "Cancel": "取消",
    "Upload": "上传", "Nothing to show": "没有可显示的内容", "Cluster overview": "集群概览",
    "Nodes ready": "就绪节点", "Pods by phase": "按阶段统计的容器组", "Recent warnings": "最近的警告",
    "Reveal": "显示", "hidden": "已隐藏", "Language": "语言", "Containers": "容器", "Image": "镜像",
    "Propagation": "传播策略", "Logs of pod": "容器组日志", "Logs of": "日志：", "Edit": "编辑", "Diff": "差异",
    "Objects": "对象",
    "Ask for a token with": "用以下命令获取令牌",
    "Since Kubernetes 1.24 a ServiceAccount no longer gets a token Secret by itself.":
        "自 Kubernetes 1.24 起，服务账户不再自动获得令牌 Secret。",
    "You are not allowed to do this": "您无权执行此操作",
    "There is nothing to display here": "这里没有可显示的内容",
}


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The switcher's choice, else the first of Accept-Language's languages (by q) that we speak."""
    if cookie in LANGUAGES:
        return cookie  # type: ignore[return-value]
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for neg_q, _, tag in sorted(ranked):
        if neg_q < 0 and tag.split("-")[0] in LANGUAGES:
            return tag.split("-")[0]
    return "en"


def t(text: str) -> str:
    if current.get() == "zh":
        return ZH.get(text, text)
    return text
