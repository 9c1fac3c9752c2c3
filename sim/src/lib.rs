//! An in-process Kubernetes API and KubeVirt simulator (filled by the simulator issue).
