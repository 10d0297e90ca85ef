package sessiontest_test

import (
	"slices"
	"testing"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/sessiontest"
)

// fourMethods is a store with only the four methods of session.Store:
// embedding the interface hides the memory store's optional abilities.
type fourMethods struct{ session.Store }

func newMemory(t *testing.T) *session.MemoryStore {
	s := session.NewMemoryStore(session.MemoryOptions{})
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRunReportsSkipped: Run returns (and logs) every optional ability a
// store lacks, each with its cost, and nothing for a store that has all.
func TestRunReportsSkipped(t *testing.T) {
	t.Run("four-methods", func(t *testing.T) {
		skipped := sessiontest.Run(t, func(t *testing.T) session.Store { return fourMethods{newMemory(t)} })
		var names []string
		for _, s := range skipped {
			names = append(names, s.Ability)
			if s.Cost == "" {
				t.Errorf("%s: no cost given", s.Ability)
			}
		}
		want := []string{"session.CompareAndSetter", "session.UserIndex", "session.Counter", "session.Cleaner", "session.Pinger", "io.Closer"}
		if !slices.Equal(names, want) {
			t.Fatalf("skipped %q, want %q", names, want)
		}
	})
	t.Run("memory", func(t *testing.T) {
		if skipped := sessiontest.Run(t, func(t *testing.T) session.Store { return newMemory(t) }); len(skipped) != 0 {
			t.Fatalf("skipped %v for a store with every ability", skipped)
		}
	})
}
