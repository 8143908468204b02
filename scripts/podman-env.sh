# Sourced by the scripts and tests that run podman: makes `podman` work in
# sandboxes like the ones rtml is tested in (cgroups v1/hybrid, fixed
# rlimits; ../shared/notes/containers.md): the runc runtime, cgroupfs, and
# no default ulimits. The last is a file of the machine's
# (/etc/containers/containers.conf), written only when missing, and said so.
if [ ! -e /etc/containers/containers.conf ] && [ -w /etc/containers ]; then
  printf '[containers]\ndefault_ulimits = []\n' > /etc/containers/containers.conf
  echo "podman: wrote /etc/containers/containers.conf (default_ulimits = [])" >&2
fi
podman() { command podman --runtime runc --cgroup-manager cgroupfs "$@"; }
