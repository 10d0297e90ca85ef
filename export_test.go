package session

// Test-only views of the wrappers' internals, for package session_test.

// CacheUp reports whether the cache of s, a store made by NewTiered, is in
// use.
func CacheUp(s Store) bool { return s.(wrapperCore).impl().(*tiered).cacheUp() }

// Reconciling returns how many ids s, a store made by NewFailover, still
// has to carry back after a move back.
func Reconciling(s Store) int { return s.(wrapperCore).impl().(*failover).reconciling() }

// ActiveIndex returns the index of the store s, made by NewFailover,
// sends requests to.
func ActiveIndex(s Store) int { return s.(wrapperCore).impl().(*failover).activeIndex() }
