package session

import "sync"

// background tracks the goroutines a Manager starts, so that Close can
// wait for them: none outlives it.
type background struct {
	mu        sync.Mutex
	wg        sync.WaitGroup
	closed    bool
	closeOnce sync.Once
}

// goBackground runs fn in a goroutine Close waits for, and reports false
// (running nothing) once the manager is closed.
func (m *Manager) goBackground(fn func()) bool {
	b := &m.bg
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return false
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		fn()
	}()
	return true
}

// Close stops the manager's background work and waits for it: it stops
// the store's expiry reports to [Options.OnEvent], delivers the events
// still queued, and waits for a read of the store's epoch under way (see
// [Options.EpochInterval]). It does not close the store. Requests may
// still be served after Close (they read the epoch themselves when it is
// due), but their events are dropped and counted. Calling Close again is
// a no-op.
//
// A manager without OnEvent starts no goroutine that lasts: only, where
// the store keeps an epoch, a short read of it now and then. So a program
// that never calls Close leaks nothing that runs for long; one with
// OnEvent calls Close before it exits, so that no event is lost.
func (m *Manager) Close() error {
	b := &m.bg
	b.closeOnce.Do(func() {
		for _, stop := range m.unwatch {
			stop()
		}
		m.closeEvents()
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.wg.Wait()
	})
	return nil
}
