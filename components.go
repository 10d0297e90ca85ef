package session

import (
	"fmt"
	"strconv"
	"strings"
)

// component is one backend inside a store, as package health reports it.
type component struct {
	// Name identifies the backend: "redis", "postgres", "memory", or the
	// store's type for other stores.
	Name string
	// Addr is the backend's host:port ("" for memory). It never holds
	// credentials.
	Addr string
	// Store is the backend itself.
	Store Store
	// Required is true when the store cannot serve requests without this
	// backend: the health check is unhealthy whenever a required backend
	// is unreachable.
	Required bool
}

// componenter is implemented by the stores made of other stores (those
// of [NewTiered], [NewFailover] and instrument) to list them for health
// checks.
type componenter interface {
	components() []component
}

// activer is implemented by every wrapper ([NewFailover], [NewTiered],
// instrument); activeBackend names the backend in use.
type activer interface {
	activeBackend() string
}

// components returns the backends of s: its Components, or s itself.
func components(s Store) []component {
	if c, ok := s.(componenter); ok {
		return c.components()
	}
	name, addr := describe(s)
	return []component{{Name: name, Addr: addr, Store: s, Required: true}}
}

// activeBackend names the backend of s that requests go to: its
// activeBackend when it is an activer, else its first required
// component.
func activeBackend(s Store) string {
	if a, ok := s.(activer); ok {
		return a.activeBackend()
	}
	for _, c := range components(s) {
		if c.Required {
			return c.Name
		}
	}
	return ""
}

// describe names a store and gives its address, as a health report shows
// them: a store that is a [fmt.Stringer] names itself (its String's first
// word is the backend, the rest its address without credentials, as the
// built-in stores do); any other is named after its type.
func describe(s Store) (name, addr string) {
	switch s := s.(type) {
	case componenter:
		// A wrapper around a single backend (instrument) is named
		// after it.
		if cs := s.components(); len(cs) == 1 {
			return cs[0].Name, cs[0].Addr
		}
	case fmt.Stringer:
		name, addr, _ = strings.Cut(s.String(), " ")
		return name, addr
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", s), "*"), ""
}

// uniqueNames makes component names unique by suffixing repeats with #2,
// #3, so that a Failover across two memory stores reports two backends.
func uniqueNames(cs []component) {
	seen := map[string]int{}
	for i := range cs {
		seen[cs[i].Name]++
		if n := seen[cs[i].Name]; n > 1 {
			cs[i].Name += "#" + strconv.Itoa(n)
		}
	}
}
