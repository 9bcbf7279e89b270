"""The cluster build's pure logic (no SSH, no API): what the Kubernetes stage writes and reads.

- `containerd`: the containerd config edit (SystemdCgroup = true in the right table for config
  version 2 and 3, the sandbox image) on the node's own `containerd config default` output;
- `kubeadm`: the kubeadm config file (kubeadm.k8s.io/v1beta4), kubeadm's output parsed (preflight
  `[ERROR ...]` lines explained with their fix, the join command);
- `apt`: the pkgs.k8s.io keyring and source lines for a Kubernetes minor;
- `calico`: the operator's Installation and the calico.yaml manifest's pool settings.
"""
