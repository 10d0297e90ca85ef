package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/health"
)

// The optional abilities a wrapper passes on, one bit each, in the order
// of abilityNames.
const (
	abCAS = 1 << iota
	abUsers
	abCount
	abClean
	abAll = abCAS | abUsers | abCount | abClean
)

var abilityNames = []string{"CompareAndSetter", "UserIndex", "Counter", "Cleaner"}

func abilityString(mask int) string {
	var names []string
	for i, n := range abilityNames {
		if mask&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// abilitiesOf returns the optional abilities s offers, by type assertion.
func abilitiesOf(s session.Store) int {
	m := 0
	if _, ok := s.(session.CompareAndSetter); ok {
		m |= abCAS
	}
	if _, ok := s.(session.UserIndex); ok {
		m |= abUsers
	}
	if _, ok := s.(session.Counter); ok {
		m |= abCount
	}
	if _, ok := s.(session.Cleaner); ok {
		m |= abClean
	}
	return m
}

// fakeStore returns a memory store offering the four Store methods plus
// exactly the optional abilities in mask: nothing else, not even Pinger
// or io.Closer (the memory store runs no goroutine, and is closed when t
// ends).
func fakeStore(t testing.TB, mask int) session.Store {
	m := session.NewMemoryStore(session.MemoryOptions{DisableCleanup: true})
	t.Cleanup(func() { m.Close() })
	type (
		S = session.Store
		C = session.CompareAndSetter
		U = session.UserIndex
		N = session.Counter
		L = session.Cleaner
	)
	switch mask {
	case 0:
		return struct{ S }{m}
	case abCAS:
		return struct {
			S
			C
		}{m, m}
	case abUsers:
		return struct {
			S
			U
		}{m, m}
	case abCAS | abUsers:
		return struct {
			S
			C
			U
		}{m, m, m}
	case abCount:
		return struct {
			S
			N
		}{m, m}
	case abCAS | abCount:
		return struct {
			S
			C
			N
		}{m, m, m}
	case abUsers | abCount:
		return struct {
			S
			U
			N
		}{m, m, m}
	case abCAS | abUsers | abCount:
		return struct {
			S
			C
			U
			N
		}{m, m, m, m}
	case abClean:
		return struct {
			S
			L
		}{m, m}
	case abCAS | abClean:
		return struct {
			S
			C
			L
		}{m, m, m}
	case abUsers | abClean:
		return struct {
			S
			U
			L
		}{m, m, m}
	case abCAS | abUsers | abClean:
		return struct {
			S
			C
			U
			L
		}{m, m, m, m}
	case abCount | abClean:
		return struct {
			S
			N
			L
		}{m, m, m}
	case abCAS | abCount | abClean:
		return struct {
			S
			C
			N
			L
		}{m, m, m, m}
	case abUsers | abCount | abClean:
		return struct {
			S
			U
			N
			L
		}{m, m, m, m}
	case abAll:
		return struct {
			S
			C
			U
			N
			L
		}{m, m, m, m, m}
	}
	t.Fatalf("bad mask %d", mask)
	return nil
}

// plainStore returns a third-party store with only Get, Set, Destroy and
// Touch.
func plainStore(t testing.TB) session.Store { return fakeStore(t, 0) }

// checkAbilities fails t unless s offers exactly the optional abilities
// in want, and every ability a wrapper always honours.
func checkAbilities(t *testing.T, what string, s session.Store, want int) {
	t.Helper()
	if got := abilitiesOf(s); got != want {
		t.Errorf("%s offers %s, want %s", what, abilityString(got), abilityString(want))
	}
	always := map[string]bool{}
	_, always["Pinger"] = s.(session.Pinger)
	_, always["Closer"] = s.(io.Closer)
	_, always["StatsReporter"] = s.(session.StatsReporter)
	_, always["Componenter"] = s.(session.Componenter)
	_, always["Activer"] = s.(session.Activer)
	for name, ok := range always {
		if !ok {
			t.Errorf("%s is not a %s", what, name)
		}
	}
}

func newFailoverOver(t *testing.T, stores ...session.Store) session.Store {
	t.Helper()
	f, err := session.NewFailover(stores, session.FailoverOptions{ProbeInterval: time.Hour, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.(io.Closer).Close() })
	return f
}

func newTieredOver(t *testing.T, cache, source session.Store) session.Store {
	t.Helper()
	ts, err := session.NewTiered(cache, source, session.TieredOptions{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestAbilitiesExact: for every combination of optional abilities on the
// inner store, each wrapper offers exactly the ones it can honour, as
// seen by type assertion: Instrument and NewTiered those of the (source)
// store, NewFailover those every store has.
func TestAbilitiesExact(t *testing.T) {
	for mask := 0; mask <= abAll; mask++ {
		t.Run(abilityString(mask), func(t *testing.T) {
			inner := fakeStore(t, mask)
			if got := abilitiesOf(inner); got != mask {
				t.Fatalf("the fake offers %s", abilityString(got))
			}
			checkAbilities(t, "Instrument", session.Instrument(inner), mask)
			checkAbilities(t, "NewTiered (full cache)", newTieredOver(t, fakeStore(t, abAll), inner), mask)
			checkAbilities(t, "NewTiered (plain cache)", newTieredOver(t, plainStore(t), inner), mask)
			checkAbilities(t, "NewFailover", newFailoverOver(t, inner, fakeStore(t, mask)), mask)
			checkAbilities(t, "Instrument(NewTiered)", session.Instrument(newTieredOver(t, fakeStore(t, abAll), inner)), mask)
			checkAbilities(t, "NewFailover(Instrument)", newFailoverOver(t, session.Instrument(inner), session.Instrument(fakeStore(t, mask))), mask)
			checkAbilities(t, "NewTiered(Instrument)", newTieredOver(t, plainStore(t), session.Instrument(inner)), mask)
		})
	}
}

// TestAbilitiesFailoverMixed: a failover over stores with different
// abilities offers the ones they share, in any order.
func TestAbilitiesFailoverMixed(t *testing.T) {
	for a := 0; a <= abAll; a++ {
		for b := 0; b <= abAll; b++ {
			f := newFailoverOver(t, fakeStore(t, a), fakeStore(t, b))
			checkAbilities(t, fmt.Sprintf("NewFailover(%s, %s)", abilityString(a), abilityString(b)), f, a&b)
		}
	}
	f := newFailoverOver(t, fakeStore(t, abAll), fakeStore(t, abAll), fakeStore(t, abCAS|abCount))
	checkAbilities(t, "NewFailover of three", f, abCAS|abCount)
}

// wrapped returns plain and every wrapper over it, by name.
func wrapped(t *testing.T, plain func(t testing.TB) session.Store) []struct {
	name  string
	store session.Store
} {
	return []struct {
		name  string
		store session.Store
	}{
		{"direct", plain(t)},
		{"Instrument", session.Instrument(plain(t))},
		{"NewTiered", newTieredOver(t, fakeStore(t, abAll), plain(t))},
		{"NewFailover", newFailoverOver(t, plain(t), plain(t))},
		{"NewFailover-mixed", newFailoverOver(t, plain(t), fakeStore(t, abAll))},
	}
}

// TestAbilitiesPlainStoreServes: a third-party store with only the four
// Store methods, given to New with AllowLastWriterWins directly and
// through each wrapper, answers 200 on writes and reads back what it
// wrote. Before the wrappers' abilities were honest, every wrapper
// claimed CompareAndSet, the manager used it, and every write was a 503.
func TestAbilitiesPlainStoreServes(t *testing.T) {
	for _, w := range wrapped(t, plainStore) {
		t.Run(w.name, func(t *testing.T) {
			a := newApp(t, w.store, session.Options{AllowLastWriterWins: true})
			routes(a)
			for i, v := range []string{"ada", "bob"} {
				resp, body := a.do("POST", "/put?k=user&v="+v)
				if resp.StatusCode != 200 {
					t.Fatalf("write %d: %s %q", i+1, resp.Status, body)
				}
				if resp, body := a.do("GET", "/get?k=user"); resp.StatusCode != 200 || body != v {
					t.Fatalf("read after write %d: %s %q, want %q", i+1, resp.Status, body, v)
				}
			}
			if resp, _ := a.do("POST", "/logout"); resp.StatusCode != 200 {
				t.Fatalf("logout: %s", resp.Status)
			}
			if _, body := a.do("GET", "/get?k=user"); body != "" {
				t.Fatalf("after logout: %q", body)
			}
			if a.store.cas.Load() != 0 {
				t.Fatalf("%d compare-and-set calls on a store without it", a.store.cas.Load())
			}
		})
	}
}

// TestAbilitiesPlainStoreRefused: without AllowLastWriterWins, New
// refuses the four-method store directly and through every wrapper: no
// wrapper claims a compare-and-set it cannot honour.
func TestAbilitiesPlainStoreRefused(t *testing.T) {
	for _, w := range wrapped(t, plainStore) {
		if _, err := session.New(w.store, session.Options{Keys: []session.KeyPair{testKey}, Logger: discardLogger()}); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: New = %v, want ErrNoCompareAndSet", w.name, err)
		}
	}
}

// TestAbilitiesPingerRule: a wrapped store that cannot ping counts as
// reachable while ctx is live, as CheckHealth counts any store; the
// wrappers' Close is safe on stores that are not Closers.
func TestAbilitiesPingerRule(t *testing.T) {
	for _, w := range wrapped(t, plainStore) {
		p, ok := w.store.(session.Pinger)
		if !ok {
			if w.name == "direct" {
				continue
			}
			t.Fatalf("%s is not a Pinger", w.name)
		}
		if err := p.Ping(tctx(t)); err != nil {
			t.Errorf("%s: Ping = %v", w.name, err)
		}
		c, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.Ping(c); err == nil {
			t.Errorf("%s: Ping with a cancelled context = nil", w.name)
		}
		if rep := health.Check(tctx(t), w.store, health.Options{}); rep.Status != health.OK {
			t.Errorf("%s: health %+v", w.name, rep)
		}
		if err := w.store.(io.Closer).Close(); err != nil {
			t.Errorf("%s: Close = %v", w.name, err)
		}
	}
}
