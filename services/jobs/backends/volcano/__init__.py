"""The Volcano backend: each job a gang-scheduled `batch.volcano.sh` Job on Kubernetes (`backend`)."""
