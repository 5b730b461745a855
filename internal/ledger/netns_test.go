package ledger

import (
	"path/filepath"
	"testing"

	"github.com/tcptrace/tcptrace/internal/testutil"
)

// TestFindNetns finds a namespace by its inode: through a path given that
// names it, else through Namespaces; never through a path naming another.
func TestFindNetns(t *testing.T) {
	testutil.RequirePrivileged(t)
	ns := newTestNetns(t)
	self := filepath.Join(procRoot, "self", "ns", "net")
	if NetnsInode(ns.Path) != ns.Inode || NetnsInode("/nonexistent") != 0 {
		t.Fatalf("NetnsInode(%s) = %d, want %d", ns.Path, NetnsInode(ns.Path), ns.Inode)
	}
	if got, ok := FindNetns(procRoot, ns.Inode, self, ns.Path); !ok || got != ns.Netns {
		t.Errorf("FindNetns with its path: %+v, %v; want %+v", got, ok, ns.Netns)
	}
	if got, ok := FindNetns(procRoot, ns.Inode, self); !ok || got.Inode != ns.Inode || NetnsInode(got.Path) != ns.Inode {
		t.Errorf("FindNetns through Namespaces: %+v, %v; want netns %d", got, ok, ns.Inode)
	}
	if got, ok := FindNetns(procRoot, NetnsInode(self), ns.Path); !ok || got.Path != self {
		t.Errorf("FindNetns of this process's namespace: %+v, %v", got, ok)
	}
	if got, ok := FindNetns(procRoot, 1, self); ok {
		t.Errorf("FindNetns of no namespace: %+v", got)
	}
}
