// Package session gives net/http servers persistent, secure sessions.
//
// A [Manager] (made by [New]) wraps handlers with [Manager.Handler]; a
// handler reaches its request's [Session] with [From]:
//
//	sessions, err := session.New(store, session.Options{Keys: keys})
//	…
//	http.ListenAndServe(addr, sessions.Handler(mux))
//
//	func login(w http.ResponseWriter, r *http.Request) {
//		s := session.From(r)
//		s.Renew()             // new id after a privilege change
//		s.Put("user_id", id)  // saved before the response's first byte
//	}
//
// The client holds a random 256-bit token in a signed cookie (or a request
// header); the store sees only its SHA-256. A request that never uses its
// session costs no store call; one that only reads costs one read; one that
// changes values costs one write, a compare-and-set that merges concurrent
// requests' changes instead of losing them. Idle timeout and absolute
// lifetime are enforced on the server.
//
// A [Store] keeps opaque records: [MemoryStore], [RedisStore] (single
// server, Sentinel, Cluster, TLS) and [PostgresStore] are built in, and
// [sessiontest.Run] checks any other. Extra abilities (counting, cleanup,
// health, compare-and-set) are small optional interfaces found by type
// assertion, in the manner of database/sql/driver. [ConfigFromEnv] and
// [Open] choose a backend at startup from the usual environment variables;
// [NewTiered] and [NewFailover] keep serving when one backend fails.
//
// [sessiontest.Run]: https://pkg.go.dev/github.com/sessionkit/session/sessiontest#Run
package session
