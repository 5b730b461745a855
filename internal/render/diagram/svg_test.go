package diagram

import (
	"strings"
	"testing"

	"github.com/tcptrace/tcptrace/internal/ladder"
	"github.com/tcptrace/tcptrace/internal/render/rendertest"
)

// TestGoldenSVG draws every fixture's shapes as SVG ladders: well-formed
// XML, the active closer named, and the same bytes as the golden file.
func TestGoldenSVG(t *testing.T) {
	for _, path := range rendertest.Fixtures(t) {
		name := rendertest.Name(path)
		t.Run(name, func(t *testing.T) {
			var a ladder.Aggregator
			p := ladder.NewPairer(a.Add)
			rendertest.Replay(t, path, p)
			p.Flush()
			var out strings.Builder
			for i, sh := range a.Shapes() {
				svg := SVG(sh, name+"-"+itoa(uint64(i)))
				rendertest.CheckXML(t, svg)
				want := svgSideName(sh.Ladder, svgMarked(sh.Active, sh.Simul, sh.N))
				if !strings.Contains(svg, `data-active-closer="`+want+`"`) {
					t.Errorf("shape %d: active closer %q not named", i, want)
				}
				out.WriteString(svg + "\n")
			}
			rendertest.Golden(t, "ladder_"+name+".svg.golden", []byte(out.String()))
		})
	}
}

// TestSVGClientCloses: the client_close fixture's ladder names the client
// as the active closer and the TIME_WAIT holder, in its marks and data.
func TestSVGClientCloses(t *testing.T) {
	var a ladder.Aggregator
	p := ladder.NewPairer(a.Add)
	rendertest.Replay(t, rendertest.Fixture(t, "client_close"), p)
	p.Flush()
	shapes := a.Shapes()
	if len(shapes) != 1 {
		t.Fatalf("%d shapes", len(shapes))
	}
	svg := SVG(shapes[0], "x")
	for _, want := range []string{`data-active-closer="client"`, `data-time-wait="client"`, `closed first 100%`, `holds TIME_WAIT 100%`, `>FIN<`} {
		if !strings.Contains(svg, want) {
			t.Errorf("no %q in\n%s", want, svg)
		}
	}
}
