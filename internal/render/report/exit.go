package report

import (
	"fmt"
	"io"
	"strconv"

	"github.com/tcptrace/tcptrace/internal/diagnosis"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// Noteworthy reports whether the diagnosis found something to show on
// exit: a warning or a failed connect.
func Noteworthy(r *diagnosis.Report) bool {
	return r != nil && (len(r.Warnings) > 0 || len(r.Failed) > 0)
}

// WriteDiagnosis writes the diagnosis shown on exit before the summary:
// the short report (forecast, TIME_WAIT, failed connects) when something
// is noteworthy, else one line on what the kernel holds, wrapped to the
// width. label, when set, names where a process runs.
func WriteDiagnosis(w io.Writer, o style.Options, r *diagnosis.Report, label func(uint32) string) error {
	if Noteworthy(r) {
		return WriteText(w, o, Options{Title: "tcptrace diagnosis", Short: true, ProcLabel: label}, r)
	}
	held, fw2, spaces := 0, 0, uint64(0)
	if r != nil {
		for _, n := range r.Namespaces {
			if n.TimeWait >= 0 {
				held, fw2, spaces = held+n.TimeWait, fw2+n.FinWait2, spaces+1
			}
		}
	}
	orphans := ""
	if fw2 > 0 {
		orphans = " and " + strconv.Itoa(fw2) + " orphaned FIN_WAIT2"
	}
	line := "no port exhaustion forecast, no failed connects (" + strconv.Itoa(held) + " TIME_WAIT" + orphans +
		" now in " + count(spaces, "namespace") + ")"
	if _, err := io.WriteString(w, wrapPara("tcptrace diagnosis: ", "  ", line, o.Columns())); err != nil {
		return fmt.Errorf("write diagnosis: %w", err)
	}
	return nil
}
