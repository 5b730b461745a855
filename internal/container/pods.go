package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A container's pod, from its runtime's OCI config.

// withPod adds the pod's name and namespace from the runtime's config of
// the container, read once per container.
func (r *Resolver) withPod(i Info) Info {
	if i.ID == "" || len(r.o.ConfigGlobs) == 0 {
		return i
	}
	p, ok := r.pods[i.ID]
	if !ok {
		p = readPod(r.o.ConfigGlobs, i.ID)
		if len(r.pods) >= MaxContainers {
			clear(r.pods)
		}
		r.pods[i.ID] = p
	}
	i.PodName, i.PodNamespace = p.PodName, p.PodNamespace
	return i
}

// podAnnotations are the OCI annotations naming a container's pod
// (containerd's CRI plugin; CRI-O and dockershim).
var podAnnotations = [][2]string{
	{"io.kubernetes.cri.sandbox-name", "io.kubernetes.cri.sandbox-namespace"},
	{"io.kubernetes.pod.name", "io.kubernetes.pod.namespace"},
}

// readPod reads the pod name and namespace from the container's OCI config.
func readPod(globs []string, id string) Info {
	for _, g := range globs {
		matches, _ := filepath.Glob(fmt.Sprintf(g, id))
		for _, m := range matches {
			var cfg struct {
				Annotations map[string]string `json:"annotations"`
			}
			b, err := readLimited(m, 1<<20)
			if err != nil || json.Unmarshal(b, &cfg) != nil {
				continue
			}
			for _, a := range podAnnotations {
				if n := cfg.Annotations[a[0]]; n != "" {
					return Info{PodName: n, PodNamespace: cfg.Annotations[a[1]]}
				}
			}
		}
	}
	return Info{}
}

// readLimited reads at most max bytes of a file.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, errors.New("config too large")
	}
	b := make([]byte, fi.Size())
	n, err := f.Read(b)
	return b[:n], err
}
