"""The etcd member `kubelite init --cluster-init` and `join --control-plane` run next to the API server (k3s's
embedded etcd, kubeadm's stacked topology), and `kubelite etcd-snapshot` for both backends."""
