"""The tutorial's manifests (tutorial.md C.2 and C.8), as the article writes them, shared by the e2e tests."""

NGINX_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 1
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:latest
        ports:
        - containerPort: 80
"""

# C.8: the Service that sits in the same file as the Deployment, after a `---`
NGINX_NODEPORT_SERVICE = """---
apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  type: NodePort
  selector:
    app: nginx
  ports:
  - port: 8068
    targetPort: 80
    nodePort: 30068
"""
