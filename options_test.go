package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/health"
)

// catch turns a panic of fn into an error, so that constructors that
// panic on a negative option are tested like those that return one.
func catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	fn()
	return nil
}

// lazyPool is a pool that never connects (pgxpool dials on first use).
func lazyPool(t *testing.T) *pgxpool.Pool {
	p, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestNegativeOptions: for every numeric field of every options struct, a
// negative value is refused with an error naming struct and field by
// every constructor that takes it (New, NewRedisStore, OpenRedis,
// redisCandidate, NewPostgresStore, OpenPostgres, postgresCandidate,
// selectStore, NewTiered, NewFailover, Config.candidates, Open,
// ConfigFromEnv), and the constructors that return no error
// (NewMemoryStore, HealthHandler) panic with that message, as
// time.NewTicker does; CheckHealth reports it. The reflection check at
// the end makes a new numeric field without a row fail this test.
func TestNegativeOptions(t *testing.T) {
	mem := memStore(t)
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rc.Close() })
	pool := lazyPool(t)
	newMgr := func(o session.Options) error {
		o.Keys = []session.KeyPair{testKey}
		_, err := session.New(mem, o)
		return err
	}
	memory := func(o session.MemoryOptions) []error {
		_, candErr := session.MemoryCandidate(o).Open(context.Background())
		_, candsErr := session.Config{}.Candidates(&session.OpenOptions{Memory: o})
		_, openErr := session.Open(context.Background(), session.Config{Mode: session.ModeSelect}, session.OpenOptions{Memory: o, Logger: discardLogger()})
		return []error{catch(func() { session.NewMemoryStore(o).Close() }), candErr, candsErr, openErr}
	}
	postgres := func(o session.PostgresOptions) []error {
		_, e1 := session.NewPostgresStore(pool, o)
		_, e2 := session.OpenPostgres("postgres://127.0.0.1:1/none", o)
		_, e3 := session.PostgresCandidate("postgres://127.0.0.1:1/none", "", o)
		_, e4 := session.Open(context.Background(), session.Config{Mode: session.ModeSelect}, session.OpenOptions{Postgres: o, Logger: discardLogger()})
		return []error{e1, e2, e3, e4}
	}
	redisOpts := func(o session.RedisOptions) []error {
		_, e1 := session.NewRedisStore(rc, o)
		_, e2 := session.OpenRedis("redis://127.0.0.1:1/0", o)
		_, e3 := session.RedisCandidate("redis://127.0.0.1:1/0", o)
		_, e4 := session.Open(context.Background(), session.Config{Mode: session.ModeSelect}, session.OpenOptions{Redis: o, Logger: discardLogger()})
		return []error{e1, e2, e3, e4}
	}
	tiered := func(o session.TieredOptions) []error {
		_, e1 := session.NewTiered(mem, mem, o)
		_, e2 := session.Open(context.Background(), session.Config{Mode: session.ModeSelect}, session.OpenOptions{Tiered: o, Logger: discardLogger()})
		return []error{e1, e2}
	}
	failover := func(o session.FailoverOptions) []error {
		f, e1 := session.NewFailover([]session.Store{mem}, o)
		if f != nil {
			f.(io.Closer).Close()
		}
		_, e2 := session.Open(context.Background(), session.Config{Mode: session.ModeSelect}, session.OpenOptions{Failover: o, Logger: discardLogger()})
		return []error{e1, e2}
	}
	checkHealth := func(o health.Options) []error {
		err := catch(func() { health.Handler(mem, o) })
		rep := health.Check(context.Background(), mem, o)
		var repErr error
		if rep.Status != health.Down || len(rep.Backends) != 1 || rep.Backends[0].Reachable {
			repErr = nil
		} else {
			repErr = fmt.Errorf("%s", rep.Backends[0].Error)
		}
		return []error{err, repErr}
	}
	one := func(err error) []error { return []error{err} }

	rows := map[string][]error{
		"Options.IdleTimeout":     one(newMgr(session.Options{IdleTimeout: -time.Second})),
		"Options.Lifetime":        one(newMgr(session.Options{Lifetime: -time.Second})),
		"Options.TouchInterval":   one(newMgr(session.Options{TouchInterval: -1})),
		"Options.CommitTimeout":   one(newMgr(session.Options{CommitTimeout: -1})),
		"Options.MaxSize":         one(newMgr(session.Options{MaxSize: -1})),
		"Options.EpochInterval":   one(newMgr(session.Options{EpochInterval: -1})),
		"Options.MaxUserSessions": one(newMgr(session.Options{MaxUserSessions: -1})),
		"Options.EventQueue":      one(newMgr(session.Options{EventQueue: -1})),
		"CookieOptions.SameSite":  one(newMgr(session.Options{Cookie: session.CookieOptions{SameSite: -1}})),

		"MemoryOptions.CleanupInterval": memory(session.MemoryOptions{CleanupInterval: -time.Minute}),
		"MemoryOptions.MaxSessions":     memory(session.MemoryOptions{MaxSessions: -1}),

		"PostgresOptions.CleanupInterval":  postgres(session.PostgresOptions{CleanupInterval: -1}),
		"PostgresOptions.CleanupBatchSize": postgres(session.PostgresOptions{CleanupBatchSize: -1}),
		"PostgresOptions.PartitionWidth":   postgres(session.PostgresOptions{Partitioned: true, PartitionWidth: -24 * time.Hour}),

		"RedisOptions.CountBatch": redisOpts(session.RedisOptions{CountBatch: -1}),

		"Options.Timeout": checkHealth(health.Options{Timeout: -1}),

		"TieredOptions.CacheTimeout":  tiered(session.TieredOptions{CacheTimeout: -1}),
		"TieredOptions.RetryInterval": tiered(session.TieredOptions{RetryInterval: -1}),
		"TieredOptions.MaxPending":    tiered(session.TieredOptions{MaxPending: -1}),
		"TieredOptions.TombstoneTTL":  tiered(session.TieredOptions{TombstoneTTL: -1}),

		"FailoverOptions.CallTimeout":      failover(session.FailoverOptions{CallTimeout: -1}),
		"FailoverOptions.FailureThreshold": failover(session.FailoverOptions{FailureThreshold: -1}),
		"FailoverOptions.ProbeInterval":    failover(session.FailoverOptions{ProbeInterval: -1}),
		"FailoverOptions.ProbeTimeout":     failover(session.FailoverOptions{ProbeTimeout: -1}),
		"FailoverOptions.RecoverAfter":     failover(session.FailoverOptions{RecoverAfter: -1}),
		"FailoverOptions.MaxTracked":       failover(session.FailoverOptions{MaxTracked: -1}),
		"FailoverOptions.Active":           failover(session.FailoverOptions{Active: -1}),

		"Config.Timeout": {func() error {
			_, err := session.Open(context.Background(), session.Config{Mode: session.ModeSelect, Timeout: -time.Second}, session.OpenOptions{Logger: discardLogger()})
			return err
		}(), func() error {
			// The selection Open runs takes Config.Timeout as it is.
			_, err := session.Select(context.Background(), []session.Candidate{session.MemoryCandidate(session.MemoryOptions{})}, session.SelectOptions{Timeout: -1, Logger: discardLogger()})
			return err
		}()},
	}
	for field, errs := range rows {
		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("%s negative, call %d: err %v; want an error (or panic) naming %s", field, i, err, field)
			}
		}
	}
	if _, err := session.ConfigFromEnv(lookupMap(map[string]string{"SESSION_BACKEND_TIMEOUT": "-1s"})); err == nil || !strings.Contains(err.Error(), "SESSION_BACKEND_TIMEOUT") {
		t.Errorf("SESSION_BACKEND_TIMEOUT=-1s: %v", err)
	}

	// Every numeric field of every options struct has a row.
	for _, v := range []any{session.Options{}, session.CookieOptions{}, session.MemoryOptions{}, session.PostgresOptions{},
		session.RedisOptions{}, health.Options{}, session.TieredOptions{},
		session.FailoverOptions{}, session.Config{}, session.OpenOptions{}, session.Metadata{}} {
		typ := reflect.TypeOf(v)
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			switch f.Type.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
				if _, ok := rows[typ.Name()+"."+f.Name]; !ok {
					t.Errorf("%s.%s (%s) has no row in TestNegativeOptions", typ.Name(), f.Name, f.Type)
				}
			}
		}
	}
}

// TestZeroOptionsMeanDefaults: a zero field gets its documented default,
// observed where the library shows it.
func TestZeroOptionsMeanDefaults(t *testing.T) {
	mem := memStore(t)
	m, err := session.New(mem, session.Options{Keys: []session.KeyPair{testKey}})
	if err != nil {
		t.Fatal(err)
	}
	o := m.Options()
	if o.IdleTimeout != 24*time.Hour || o.Lifetime != 7*24*time.Hour || o.TouchInterval != time.Minute || o.MaxSize != 64<<10 || o.CommitTimeout != 5*time.Second ||
		o.CookieName != "session" || o.Cookie.Path != "/" || o.Cookie.SameSite != http.SameSiteLaxMode ||
		o.EpochInterval != 5*time.Second || o.EventQueue != 1024 || o.MaxUserSessions != 0 {
		t.Errorf("zero Options: defaults %+v", o)
	}
	m, _ = session.New(mem, session.Options{Keys: []session.KeyPair{testKey}, IdleTimeout: 5 * time.Minute})
	if got := m.Options().TouchInterval; got != 30*time.Second {
		t.Errorf("TouchInterval with IdleTimeout 5m: %v; want a tenth, 30s", got)
	}

	// IdleTimeout equal to Lifetime leaves only the absolute lifetime: the
	// cookie's expiry is Lifetime from creation, however idle.
	m, _ = session.New(mem, session.Options{Keys: []session.KeyPair{testKey}, IdleTimeout: time.Hour, Lifetime: time.Hour})
	rec := httptest.NewRecorder()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { session.From(r).Put("k", 1) })).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if cs := rec.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge < 3590 || cs[0].MaxAge > 3600 {
		t.Errorf("IdleTimeout = Lifetime = 1h: cookies %v; want Max-Age 1h", cs)
	}

	// MemoryOptions: the cleanup goroutine runs by default (CleanupInterval
	// 0 is one minute) and not with DisableCleanup; MaxSessions 0 is no
	// limit.
	janitors := func() int {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 2) // one stack per goroutine
		return strings.Count(b.String(), "created by github.com/sessionkit/session.NewMemoryStore")
	}
	before := janitors()
	def := session.NewMemoryStore(session.MemoryOptions{})
	if n := janitors(); n != before+1 {
		t.Errorf("MemoryOptions{}: %d cleanup goroutines, want %d", n, before+1)
	}
	off := session.NewMemoryStore(session.MemoryOptions{DisableCleanup: true})
	if janitors() != before+1 {
		t.Error("DisableCleanup: a cleanup goroutine started")
	}
	for i := range 2000 {
		if err := def.Set(context.Background(), fmt.Sprint(i), rec2()); err != nil {
			t.Fatalf("MaxSessions 0 limited the store at %d: %v", i, err)
		}
	}
	def.Close()
	off.Close()
	if janitors() != before {
		t.Error("Close left the cleanup goroutine running")
	}

	// Config.Timeout 0 is three seconds; HealthOptions.Timeout 0
	// is two seconds: the deadline each Open or ping sees.
	var openLeft time.Duration
	cand := session.Candidate{Name: "probe", Persistent: true, Open: func(ctx context.Context) (session.Store, error) {
		d, _ := ctx.Deadline()
		openLeft = time.Until(d)
		return mem, nil
	}}
	if _, err := session.Select(context.Background(), []session.Candidate{cand}, session.SelectOptions{Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}
	if openLeft <= 2500*time.Millisecond || openLeft > 3*time.Second {
		t.Errorf("Config.Timeout 0: Open had %v; want 3s", openLeft)
	}
	ds := &deadlineStore{MemoryStore: mem}
	if rep := health.Check(context.Background(), ds, health.Options{}); rep.Status != health.OK {
		t.Fatalf("health: %+v", rep)
	}
	if ds.left <= 1500*time.Millisecond || ds.left > 2*time.Second {
		t.Errorf("HealthOptions.Timeout 0: ping had %v; want 2s", ds.left)
	}

	// Config: SESSION_BACKEND_TIMEOUT unset or 0 is three seconds; Open
	// with a zero Config.Timeout uses three seconds too.
	for _, v := range []string{"", "0", "0s"} {
		c, err := session.ConfigFromEnv(lookupMap(map[string]string{"SESSION_BACKEND_TIMEOUT": v}))
		if err != nil || c.Timeout != 3*time.Second {
			t.Errorf("SESSION_BACKEND_TIMEOUT=%q: %v, %v; want 3s", v, c.Timeout, err)
		}
	}
	b, err := session.Open(context.Background(), session.Config{}, session.OpenOptions{Logger: discardLogger()})
	if err != nil {
		t.Fatalf("Open with a zero Config: %v", err)
	}
	b.Close()

	// Tiered and Failover zero options are accepted (their defaults are
	// observed by their own tests: CacheTimeout, ProbeInterval...).
	if _, err := session.NewTiered(mem, mem, session.TieredOptions{}); err != nil {
		t.Error(err)
	}
	f, err := session.NewFailover([]session.Store{mem}, session.FailoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.(io.Closer).Close()
	// Redis and Postgres zero options are accepted without a server.
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rc.Close()
	if _, err := session.NewRedisStore(rc, session.RedisOptions{}); err != nil {
		t.Error(err)
	}
	ps, err := session.NewPostgresStore(lazyPool(t), session.PostgresOptions{DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	ps.Close()
}

func rec2() session.Record {
	return session.Record{Data: []byte("x"), Expires: time.Now().Add(time.Hour)}
}

type deadlineStore struct {
	*session.MemoryStore
	left time.Duration
}

func (d *deadlineStore) Ping(ctx context.Context) error {
	dl, _ := ctx.Deadline()
	d.left = time.Until(dl)
	return nil
}
