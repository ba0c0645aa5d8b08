"""`kubelite lab`: classic Kubernetes attacks run for real against a deliberately weakened cluster, then
stopped by the defense each teaches (issue 15).  Scenarios are data, one YAML file each, under scenarios/."""
