"""kubeadm-style cluster bootstrap: `kubelite init`, bootstrap tokens, the signed `cluster-info`, `kubelite join`."""
