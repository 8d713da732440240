package query

import (
	"fmt"
	"html"
	"slices"
	"strings"

	"github.com/brookstream/brook/internal/task"
)

// The topology drawing of the status page: the compiled graph as an SVG
// image, laid out in layers. Each sub-topology is a band; inside it the
// input topics form the first column, each node sits in the column of
// its depth (sources first, a child right of its deepest parent), the
// output topics form the last column, and the stores sit under the band
// in the column of the first node that uses them. Internal topics
// (repartition) are dashed; they appear in the band that writes them and
// in the band that reads them. Global tables get a band of their own.
// Every element carries data attributes (data-kind, data-name) so that
// tests and scripts can find them.

// Layout constants, in SVG user units (pixels at scale 1).
const (
	svgBoxW     = 180 // width of a node, topic or store
	svgBoxH     = 34
	svgStoreH   = 40  // a store's cylinder
	svgColPitch = 236 // horizontal distance between columns
	svgRowPitch = 50  // vertical distance between rows
	svgMargin   = 16
	svgBandHead = 28  // height of a band's title
	svgBandGap  = 18  // space between bands
	svgCharW    = 7.2 // of the 12px monospace labels
	svgSubCharW = 6.0 // of the 10px kind lines
	svgFontSize = 12
)

// svgItem is one box of the drawing.
type svgItem struct {
	kind  string // "source", "processor", "sink", "topic", "internal-topic", "store"
	name  string // node, topic or store name
	label string // first line
	sub   string // second line, smaller ("" for none)
	col   int
	row   int
	x, y  int // computed
}

// svgBand is one sub-topology (or the global tables).
type svgBand struct {
	title string
	id    string
	items []*svgItem
	edges [][2]*svgItem // arrows
	links [][2]*svgItem // dotted store links
	cols  int
	rows  int
	y, h  int
}

// topologySVG draws g, a compiled topology, as an SVG document.
func topologySVG(g *task.Graph) string {
	var bands []*svgBand
	for _, st := range g.SubTopologies {
		bands = append(bands, subTopologyBand(g, st))
	}
	if gb := globalBand(g); gb != nil {
		bands = append(bands, gb)
	}
	width := 2 * svgMargin
	for _, b := range bands {
		width = max(width, 2*svgMargin+(b.cols-1)*svgColPitch+svgBoxW+2*svgMargin)
	}
	y := svgMargin
	for _, b := range bands {
		b.y = y
		b.h = svgBandHead + b.rows*svgRowPitch + svgMargin/2
		for _, it := range b.items {
			it.x = 2*svgMargin + it.col*svgColPitch
			it.y = y + svgBandHead + it.row*svgRowPitch
		}
		y += b.h + svgBandGap
	}
	height := max(y-svgBandGap+svgMargin, 2*svgMargin)

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" id="topology-svg" class="topology" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="topology" font-family="ui-monospace, DejaVu Sans Mono, monospace" font-size="12">`, width, height, width, height)
	s.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead" fill="#7d8796"/></marker></defs>`)
	if len(bands) == 0 {
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="empty" fill="#5d6878">empty topology</text>`, svgMargin, svgMargin+svgFontSize)
	}
	for _, b := range bands {
		fmt.Fprintf(&s, `<g class="band" data-kind="sub-topology" data-name="%s">`, esc(b.id))
		fmt.Fprintf(&s, `<rect class="band-box" x="%d" y="%d" width="%d" height="%d" rx="8" fill="#fafbfc" stroke="#d9dee6"/>`, svgMargin, b.y, width-2*svgMargin, b.h)
		fmt.Fprintf(&s, `<text class="band-title" x="%d" y="%d" fill="#5d6878" font-weight="600">%s</text>`, svgMargin+10, b.y+18, esc(b.title))
		for _, e := range b.edges {
			from, to := e[0], e[1]
			x1, y1 := from.x+svgBoxW, from.y+svgBoxH/2
			x2, y2 := to.x, to.y+svgBoxH/2
			mid := (x1 + x2) / 2
			fmt.Fprintf(&s, `<path class="edge" data-from="%s" data-to="%s" d="M%d,%d C%d,%d %d,%d %d,%d" marker-end="url(#arrow)" fill="none" stroke="#7d8796" stroke-width="1.2"/>`,
				esc(from.name), esc(to.name), x1, y1, mid, y1, mid, y2, x2, y2)
		}
		for _, l := range b.links {
			// An arc through the gutter left of the column, from the
			// node's left side to the store's: a straight line down
			// would cross the boxes between them. Longer arcs bulge
			// further, so that nested ones stay apart.
			n, st := l[0], l[1]
			y1, y2 := n.y+svgBoxH/2, st.y+svgStoreH/2
			bulge := 14 + 5*min(abs(st.row-n.row), 6)
			fmt.Fprintf(&s, `<path class="store-link" data-from="%s" data-to="%s" d="M%d,%d C%d,%d %d,%d %d,%d" fill="none" stroke="#a86400" stroke-dasharray="2 3"/>`,
				esc(n.name), esc(st.name), n.x, y1, n.x-bulge, y1, st.x-bulge, y2, st.x, y2)
		}
		for _, it := range b.items {
			writeItem(&s, it)
		}
		s.WriteString(`</g>`)
	}
	s.WriteString(`</svg>`)
	return s.String()
}

// svgPaint are the fill and stroke of each kind of box, as presentation
// attributes: the drawing needs no style sheet (opened alone, it looks
// as on the page, and a Content-Security-Policy that forbids inline
// styles does not touch it).
var svgPaint = map[string]string{
	"source":         `fill="#e4efff" stroke="#2463b7" stroke-width="1.2"`,
	"processor":      `fill="#ffffff" stroke="#8a96a8" stroke-width="1.2"`,
	"sink":           `fill="#e8f6ee" stroke="#1d7a46" stroke-width="1.2"`,
	"topic":          `fill="#f3f0ff" stroke="#6b52c4" stroke-width="1.2"`,
	"internal-topic": `fill="#f3f0ff" stroke="#6b52c4" stroke-width="1.2" stroke-dasharray="4 3"`,
	"store":          `fill="#fff7e6" stroke="#a86400" stroke-width="1.2"`,
}

// writeItem draws one box with its label (cut to fit; the full text is
// the box's title).
func writeItem(s *strings.Builder, it *svgItem) {
	fmt.Fprintf(s, `<g class="item %s" data-kind="%s" data-name="%s"><title>%s</title>`, it.kind, it.kind, esc(it.name), esc(it.kind+": "+it.name))
	paint := svgPaint[it.kind]
	switch it.kind {
	case "topic", "internal-topic":
		fmt.Fprintf(s, `<rect class="shape" x="%d" y="%d" width="%d" height="%d" rx="%d" %s/>`, it.x, it.y, svgBoxW, svgBoxH, svgBoxH/2, paint)
	case "store":
		// A cylinder: body, then the top ellipse.
		e := 5
		fmt.Fprintf(s, `<path class="shape" d="M%d,%d v%d a%d,%d 0 0 0 %d,0 v%d" %s/>`, it.x, it.y+e, svgStoreH-2*e, svgBoxW/2, e, svgBoxW, -(svgStoreH - 2*e), paint)
		fmt.Fprintf(s, `<ellipse class="shape" cx="%d" cy="%d" rx="%d" ry="%d" %s/>`, it.x+svgBoxW/2, it.y+e, svgBoxW/2, e, paint)
	default:
		fmt.Fprintf(s, `<rect class="shape" x="%d" y="%d" width="%d" height="%d" rx="4" %s/>`, it.x, it.y, svgBoxW, svgBoxH, paint)
	}
	cx := it.x + svgBoxW/2
	subY, labelY := it.y+13, it.y+27
	if it.kind == "store" { // below the cylinder's top
		subY, labelY = it.y+21, it.y+34
	}
	if it.sub == "" {
		fmt.Fprintf(s, `<text class="label" x="%d" y="%d" text-anchor="middle" fill="#1d2430">%s</text>`, cx, it.y+svgBoxH/2+4, esc(fit(it.label, svgBoxW-12, svgCharW)))
	} else {
		fmt.Fprintf(s, `<text class="kind" x="%d" y="%d" text-anchor="middle" fill="#5d6878" font-size="10">%s</text>`, cx, subY, esc(fit(it.sub, svgBoxW-12, svgSubCharW)))
		fmt.Fprintf(s, `<text class="label" x="%d" y="%d" text-anchor="middle" fill="#1d2430">%s</text>`, cx, labelY, esc(fit(it.label, svgBoxW-12, svgCharW)))
	}
	s.WriteString(`</g>`)
}

// fit cuts text to what a box width holds at charW per character, with
// an ellipsis.
func fit(text string, width int, charW float64) string {
	n := int(float64(width) / charW)
	r := []rune(text)
	if len(r) <= n {
		return text
	}
	return string(r[:max(n-1, 1)]) + "…"
}

// esc escapes text for SVG (XML) content and attribute values.
func esc(s string) string { return html.EscapeString(s) }

// subTopologyBand lays out one sub-topology.
func subTopologyBand(g *task.Graph, st *task.SubTopology) *svgBand {
	b := &svgBand{title: fmt.Sprintf("Sub-topology %d", st.ID), id: fmt.Sprint(st.ID)}
	inSub := map[string]bool{}
	for _, n := range st.Nodes {
		inSub[n] = true
	}
	depth := map[string]int{}
	maxDepth := 0
	for _, name := range st.Nodes { // parents before children
		n := g.Nodes[name]
		d := 0
		for _, p := range n.Parents {
			if inSub[p] {
				d = max(d, depth[p]+1)
			}
		}
		depth[name] = d
		maxDepth = max(maxDepth, d)
	}
	rows := map[int]int{} // next free row per column
	place := func(it *svgItem) *svgItem {
		it.row = rows[it.col]
		rows[it.col]++
		b.items = append(b.items, it)
		return it
	}
	topicKind := func(t string) string {
		if g.IsInternalTopic(t) {
			return "internal-topic"
		}
		return "topic"
	}
	topicSub := func(t string) string {
		if g.IsInternalTopic(t) {
			return "internal topic"
		}
		return "topic"
	}
	inputs := map[string]*svgItem{}
	nodes := map[string]*svgItem{}
	outputs := map[string]*svgItem{}
	lastCol := maxDepth + 2
	for _, name := range st.Nodes {
		n := g.Nodes[name]
		if n.Kind != task.Source {
			continue
		}
		topics := slices.Clone(n.Topics)
		if n.Pattern != nil {
			topics = append(topics, "/"+n.Pattern.String()+"/")
		}
		for _, t := range topics {
			if inputs[t] == nil {
				inputs[t] = place(&svgItem{kind: topicKind(t), name: t, label: t, sub: topicSub(t), col: 0})
			}
		}
	}
	for _, name := range st.Nodes {
		n := g.Nodes[name]
		nodes[name] = place(&svgItem{kind: n.Kind.String(), name: name, label: name, sub: n.Kind.String(), col: depth[name] + 1})
	}
	for _, name := range st.Nodes {
		n := g.Nodes[name]
		if n.Kind != task.Sink {
			continue
		}
		t := n.SinkTopic
		label, kind, sub := t, topicKind(t), topicSub(t)
		if t == "" {
			t, label, kind, sub = "<chosen per record>", "chosen per record", "topic", "topics"
		}
		if outputs[t] == nil {
			outputs[t] = place(&svgItem{kind: kind, name: t, label: label, sub: sub, col: lastCol})
		}
	}
	for _, name := range st.Nodes {
		n := g.Nodes[name]
		switch n.Kind {
		case task.Source:
			for _, t := range n.Topics {
				b.edges = append(b.edges, [2]*svgItem{inputs[t], nodes[name]})
			}
			if n.Pattern != nil {
				b.edges = append(b.edges, [2]*svgItem{inputs["/"+n.Pattern.String()+"/"], nodes[name]})
			}
		case task.Sink:
			t := n.SinkTopic
			if t == "" {
				t = "<chosen per record>"
			}
			b.edges = append(b.edges, [2]*svgItem{nodes[name], outputs[t]})
		}
		for _, c := range n.Children {
			if nodes[c] != nil {
				b.edges = append(b.edges, [2]*svgItem{nodes[name], nodes[c]})
			}
		}
	}
	// Stores go under everything else, in the column of their first
	// node.
	top := 0
	for _, r := range rows {
		top = max(top, r)
	}
	storeRows := map[int]int{}
	// The sub-topology's stores, then the global tables its nodes read
	// (drawn in the global band too).
	stores := slices.Clone(st.Stores)
	for _, name := range st.Nodes {
		for _, s := range g.Nodes[name].Stores {
			if !slices.Contains(stores, s) {
				stores = append(stores, s)
			}
		}
	}
	for _, name := range stores {
		spec := g.Stores[name]
		if spec == nil {
			continue
		}
		col := 1
		var users []*svgItem
		for _, n := range spec.Nodes {
			if it := nodes[n]; it != nil {
				if len(users) == 0 {
					col = it.col
				}
				users = append(users, it)
			}
		}
		it := &svgItem{kind: "store", name: name, label: name, sub: storeSub(spec), col: col, row: top + storeRows[col]}
		storeRows[col]++
		b.items = append(b.items, it)
		for _, u := range users {
			b.links = append(b.links, [2]*svgItem{u, it})
		}
	}
	extra := 0
	for _, r := range storeRows {
		extra = max(extra, r)
	}
	b.rows = max(top+extra, 1)
	b.cols = lastCol + 1
	return b
}

// storeSub is a store's second line: its kind and how it is kept.
func storeSub(spec *task.StoreSpec) string {
	how := "not logged"
	switch {
	case spec.Global:
		how = "global"
	case spec.SourceTopic != "":
		how = "table"
	case spec.Logged:
		how = "logged"
	}
	if spec.InMemory {
		how += ", in memory"
	}
	return spec.Kind + ", " + how
}

// globalBand lays out the global tables: each source topic and its store.
func globalBand(g *task.Graph) *svgBand {
	var names []string
	for name, spec := range g.Stores {
		if spec.Global {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	b := &svgBand{title: "Global tables", id: "global", cols: 2, rows: len(names)}
	for i, name := range names {
		spec := g.Stores[name]
		t := &svgItem{kind: "topic", name: spec.SourceTopic, label: spec.SourceTopic, sub: "topic", col: 0, row: i}
		s := &svgItem{kind: "store", name: name, label: name, sub: storeSub(spec), col: 1, row: i}
		b.items = append(b.items, t, s)
		b.edges = append(b.edges, [2]*svgItem{t, s})
	}
	return b
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
