package query

import (
	"context"
	"embed"
	"net/http"
	"sync"
)

// The status routes of the query handler:
//
//	GET /status               the instance's Status as JSON (auth)
//	GET /status/topology.svg  the topology drawn as SVG (auth)
//	GET /status/ui            the status page (HTML, no data in it)
//	GET /status/ui/app.js     its script
//	GET /status/ui/style.css  its style sheet
//
// The page and its two assets are compiled into the binary (statusui/)
// and hold no data, so they are served without the bearer token; the
// script asks for the token when /status answers 401 and sends it with
// every request. The page loads nothing from any other host: a
// Content-Security-Policy header allows this origin only.

//go:embed statusui/index.html statusui/app.js statusui/style.css
var statusUI embed.FS

// statusCSP is the Content-Security-Policy of the page and its assets:
// scripts, styles and requests go to this origin only.
const statusCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// statusRoute returns the handler of a path under /status (segs are the
// path's segments, segs[0] == "status"), or a 404.
func (h *queryHandler) statusRoute(segs []string, notFound *apiError) (http.HandlerFunc, string, *apiError) {
	if h.a.rt == nil {
		return func(w http.ResponseWriter, r *http.Request) {
			h.fail(w, &apiError{Status: http.StatusInternalServerError, Error: "query: NewHandler needs an App made by topology.NewApp"})
		}, "/status", nil
	}
	switch {
	case len(segs) == 1:
		return h.auth(h.statusJSON), "/status", nil
	case len(segs) == 2 && segs[1] == "topology.svg":
		return h.auth(h.topologyImage), "/status/topology.svg", nil
	case len(segs) == 2 && segs[1] == "ui":
		return h.asset("statusui/index.html", "text/html; charset=utf-8"), "/status/ui", nil
	case len(segs) == 3 && segs[1] == "ui" && segs[2] == "app.js":
		return h.asset("statusui/app.js", "text/javascript; charset=utf-8"), "/status/ui/app.js", nil
	case len(segs) == 3 && segs[1] == "ui" && segs[2] == "style.css":
		return h.asset("statusui/style.css", "text/css; charset=utf-8"), "/status/ui/style.css", nil
	}
	return nil, routeUnknown, notFound
}

// statusJSON answers GET /status. Listing end offsets is bounded by the
// forward time-out (WithForwardTimeout).
func (h *queryHandler) statusJSON(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.timeout)
	defer cancel()
	w.Header().Set("Cache-Control", "no-store")
	h.reply(w, http.StatusOK, h.a.status(ctx))
}

// topologyImage answers GET /status/topology.svg.
func (h *queryHandler) topologyImage(w http.ResponseWriter, r *http.Request) {
	svg := h.svg()
	w.Header().Set("Content-Type", "image/svg+xml; charset=utf-8")
	w.Header().Set("Content-Security-Policy", statusCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write([]byte(svg))
}

// svg returns the topology drawing, made once (the graph never changes).
func (h *queryHandler) svg() string {
	h.svgOnce.Do(func() { h.svgText = topologySVG(h.a.rt.Graph()) })
	return h.svgText
}

// asset serves one embedded file of the status page.
func (h *queryHandler) asset(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := statusUI.ReadFile(name)
		if err != nil { // cannot happen: the files are embedded
			h.fail(w, &apiError{Status: http.StatusInternalServerError, Error: err.Error()})
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Security-Policy", statusCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(body)
	}
}

// svgCache holds the handler's topology drawing.
type svgCache struct {
	svgOnce sync.Once
	svgText string
}
