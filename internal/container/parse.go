// Package container attributes connections to containers: a socket's cgroup
// id (cgroup v2: the inode of its cgroup directory) or network namespace is
// resolved to a container ID, and where the cgroup path or the runtime
// reveals them, to a Kubernetes pod's UID, name and namespace.
package container

import (
	"path"
	"strings"
)

// Info is what is known of the container a socket belongs to. The zero
// value means "not in a container" (or unknown).
type Info struct {
	ID           string // full container ID (64 hex digits), "" if none
	Runtime      string // docker, containerd, crio, podman, or "" when the path names none
	PodUID       string // Kubernetes pod UID from a kubepods cgroup, "" if none
	PodName      string // from the runtime's OCI config annotations, when readable
	PodNamespace string
}

// InContainer reports whether a container was found.
func (i Info) InContainer() bool { return i.ID != "" }

// Short returns the 12-digit ID docker shows, or "" outside containers.
func (i Info) Short() string {
	if len(i.ID) > 12 {
		return i.ID[:12]
	}
	return i.ID
}

// Label returns the text a view shows for the container: "namespace/pod"
// when the pod is known, else the short container ID, else "".
func (i Info) Label() string {
	if i.PodName != "" {
		if i.PodNamespace != "" {
			return i.PodNamespace + "/" + i.PodName
		}
		return i.PodName
	}
	return i.Short()
}

// runtimePrefixes name the runtime of a "<prefix>-<id>.scope" systemd unit.
var runtimePrefixes = []struct{ prefix, runtime string }{
	{"docker-", "docker"},
	{"cri-containerd-", "containerd"},
	{"crio-", "crio"},
	{"libpod-", "podman"},
	{"containerd-", "containerd"},
}

// ParseCgroupPath finds the container and pod in a cgroup path, as the
// runtimes name them with the systemd and cgroupfs drivers:
//
//	/system.slice/docker-<id>.scope
//	/docker/<id>
//	/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
//	/kubepods/besteffort/pod<uid>/<id>
//	/machine.slice/libpod-<id>.scope, /system.slice/crio-<id>.scope
//
// The innermost element naming a container wins (nested runtimes).
func ParseCgroupPath(p string) Info {
	var info Info
	parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for i, el := range parts {
		if uid, ok := podUID(el); ok {
			info.PodUID = uid
			continue
		}
		name := strings.TrimSuffix(el, ".scope")
		scoped := name != el
		if scoped {
			for _, rp := range runtimePrefixes {
				if id, ok := strings.CutPrefix(name, rp.prefix); ok && isID(id) {
					info.ID, info.Runtime = id, rp.runtime
					break
				}
			}
			continue
		}
		if !isID(el) || i == 0 {
			continue
		}
		// cgroupfs driver: /<runtime dir>/<id> or /kubepods/<qos>/pod<uid>/<id>.
		info.ID = el
		switch parent := parts[i-1]; {
		case parent == "docker":
			info.Runtime = "docker"
		case parent == "libpod_parent" || strings.HasPrefix(parent, "libpod"):
			info.Runtime = "podman"
		default:
			info.Runtime = ""
		}
	}
	if info.ID == "" {
		info.PodUID = "" // a pod's own slice, not a container in it
	}
	return info
}

// podUID parses "pod<uid>" (cgroupfs) or "kubepods-<qos>-pod<uid_with_underscores>.slice" (systemd).
func podUID(el string) (string, bool) {
	if s, ok := strings.CutSuffix(el, ".slice"); ok {
		i := strings.LastIndex(s, "-pod")
		if !strings.HasPrefix(s, "kubepods") || i < 0 {
			return "", false
		}
		uid := strings.ReplaceAll(s[i+4:], "_", "-")
		return uid, isUID(uid)
	}
	if uid, ok := strings.CutPrefix(el, "pod"); ok && isUID(uid) {
		return uid, true
	}
	return "", false
}

// isID reports whether s is a 64-digit lowercase hex container ID.
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isUID reports whether s looks like a Kubernetes UID (8-4-4-4-12 hex).
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}
