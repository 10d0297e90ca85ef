package session_test

import (
	"testing"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/sessiontest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConformance runs the conformance suite against every built-in
// backend, each as a subtest named after it.
func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			b.new(t) // skip early, once, when the server is unreachable
			sessiontest.Run(t, func(t *testing.T) session.Store { return b.new(t) })
		})
	}
	t.Run("memory-capped", func(t *testing.T) {
		sessiontest.Run(t, func(t *testing.T) session.Store {
			return session.NewMemoryStore(session.MemoryOptions{MaxSessions: 10000, CleanupInterval: 10 * 1e6})
		})
	})
}
