package diagram

import (
	"io"

	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/style"
)

// ShapeText draws a shape's aggregate ladder as lines of text, as
// --diagram=aggregate draws each shape.
func ShapeText(sh *ladder.Shape, o style.Options) []string {
	return newDrawer(io.Discard, o).drawShape(sh)
}

// LadderText draws one connection's ladder as lines of text, as --diagram
// draws it.
func LadderText(l *ladder.Ladder, o style.Options) []string {
	return newDrawer(io.Discard, o).drawConn(l)
}
