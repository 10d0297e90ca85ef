package session

import "sync"

// background tracks the goroutines a Manager starts, so that Close can
// wait for them: none outlives it.
type background struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	closed bool
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

// Close stops the manager's background work and waits for it: a read of
// the store's epoch under way (see [Options.EpochInterval]). It does not
// close the store. Requests may still be served after Close; they read
// the epoch themselves when it is due. Calling Close again is a no-op.
//
// A manager whose store keeps no epoch starts no goroutine, and one that
// does starts them only briefly, one at a time; so a program that never
// calls Close leaks nothing that runs for long. Call it when the
// manager's work is done, as a test does.
func (m *Manager) Close() error {
	b := &m.bg
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}
