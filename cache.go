package session

import (
	"net/http"
	"strings"
)

// The caching rule: a response whose content depended on a session must
// not be stored by a shared cache, and a response that carries a token
// must not be stored by any cache.
//
//   - A handler that never used its session gets no header from the
//     middleware: its response (a static file, a public page) stays as
//     cacheable as the handler made it.
//   - A handler that used its session (read, changed or destroyed it)
//     gets "Vary: Cookie" (plus the token header and Authorization when
//     [Options.TokenHeader] is set), and "Cache-Control: no-store" unless
//     it chose its own Cache-Control. A Cache-Control of its own that lets
//     shared caches store the response ("public", "s-maxage") is made
//     "private", its other directives kept.
//   - A response that sets, re-sends or expires the token always gets
//     "Cache-Control: no-store", whatever the handler chose: a cached copy
//     would hand one client's token to another.

// vary adds the request headers a session-dependent response varies on.
// both is the session's own room for the two default values.
func (m *Manager) vary(h http.Header, both *[2]string) {
	if m.opts.TokenHeader == "" && len(h["Vary"]) == 0 && len(h["Cache-Control"]) == 0 {
		// The common case, without an allocation: the values live in
		// the Session (each capped, so that appending to one never
		// touches the other); privateCache then finds its default in
		// place.
		*both = [2]string{"Cookie", "no-store"}
		h["Vary"], h["Cache-Control"] = both[0:1:1], both[1:2:2]
		return
	}
	addVary(h, "Cookie")
	if m.opts.TokenHeader != "" {
		addVary(h, m.opts.TokenHeader)
		addVary(h, "Authorization")
	}
}

// addVary adds name to the Vary header unless it is listed already.
func addVary(h http.Header, name string) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}

// privateCache applies the caching rule's Cache-Control to the response
// of a handler that used its session; tokenSent reports that the response
// carries a token or its expiry.
func privateCache(h http.Header, tokenSent bool) {
	cc := h.Values("Cache-Control")
	if len(cc) == 1 && cc[0] == "no-store" {
		return // already the strictest, as vary leaves it by default
	}
	if tokenSent || len(cc) == 0 {
		h.Set("Cache-Control", "no-store")
		return
	}
	var kept []string
	shared := false
	for _, v := range cc {
		for _, d := range strings.Split(v, ",") {
			d = strings.TrimSpace(d)
			name, _, _ := strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "public", "s-maxage":
				shared = true
				continue
			case "private":
				continue
			case "":
				continue
			}
			kept = append(kept, d)
		}
	}
	if !shared {
		return
	}
	h.Set("Cache-Control", strings.Join(append([]string{"private"}, kept...), ", "))
}
