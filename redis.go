package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures a [RedisStore]. The zero value is ready to use.
type RedisOptions struct {
	// Prefix is prepended to every id to form the Redis key, so that
	// sessions can share a database with other data and several apps can
	// share one server. The default is "session:".
	Prefix string

	// CountBatch is the COUNT hint for each SCAN step of Count. The
	// default (0) is 1000; a negative value is an error.
	CountBatch int64

	// UserPrefix is prepended to a user id to form the key of that user's
	// index ([UserIndex]): UserPrefix + "{" + user id + "}". It must not be
	// a prefix of Prefix or start with it, so that Count never counts an
	// index and no session id can name one. The default is Prefix with its
	// trailing ":" replaced by "-users:" ("session-users:").
	UserPrefix string
}

// check returns an error for an invalid (negative) option.
func (o RedisOptions) check() error {
	return checkNonNegative("RedisOptions", "CountBatch", o.CountBatch)
}

// RedisStore is a [Store] on Redis. It takes a [redis.UniversalClient], so
// one store works on a single server, through Sentinel (a failover client)
// and on a Redis Cluster.
//
// Each record is one plain string key (prefix + id) holding Data, with the
// record's expiry as the key's own expiry: Redis removes expired records by
// itself, and an operator can read a session with redis-cli GET (the value
// starts with its expiry; see the layout below). Every method is one round
// trip.
type RedisStore struct {
	client     redis.UniversalClient
	prefix     string
	userPrefix string
	countBatch int64
	ownsClient bool
}

// NewRedisStore returns a RedisStore on client. The caller keeps ownership
// of client: the store's Close does not close it.
//
// Set ContextTimeoutEnabled in the client's options: without it go-redis
// ignores context deadlines while it waits for a reply, and a call on a
// stalled server outlives its deadline by up to the read timeout.
func NewRedisStore(client redis.UniversalClient, opts RedisOptions) (*RedisStore, error) {
	if client == nil {
		return nil, errors.New("session: NewRedisStore: client is nil")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = "session:"
	}
	if opts.CountBatch == 0 {
		opts.CountBatch = 1000
	}
	if opts.UserPrefix == "" {
		opts.UserPrefix = strings.TrimSuffix(opts.Prefix, ":") + "-users:"
	}
	if strings.HasPrefix(opts.UserPrefix, opts.Prefix) || strings.HasPrefix(opts.Prefix, opts.UserPrefix) {
		return nil, fmt.Errorf("session: NewRedisStore: UserPrefix %q and Prefix %q overlap", opts.UserPrefix, opts.Prefix)
	}
	return &RedisStore{client: client, prefix: opts.Prefix, userPrefix: opts.UserPrefix, countBatch: opts.CountBatch}, nil
}

// OpenRedis returns a RedisStore on a new client for the Redis named by
// rawURL; the store owns the client: its Close closes it. It does not
// contact the server; use Ping. The URL takes these forms:
//
//   - redis://[user:password@]host:port/db: one server;
//   - rediss://…: the same over TLS, verifying the server's certificate
//     (Upstash and most managed services);
//   - redis://host:port?addr=host2:port2&addr=…: a Redis Cluster, given one
//     or more seed nodes; add cluster=true when there is only one seed;
//   - redis://host:port?master_name=name&addr=…: Sentinel, where the hosts
//     are the sentinels and name is the monitored master.
//
// Other query parameters are go-redis options in snake case
// (dial_timeout=3s, pool_size=20). An error never contains the password.
//
// The client honours context deadlines (go-redis ContextTimeoutEnabled):
// without it a hung server holds a call for the client's ReadTimeout
// whatever the caller's deadline, which breaks the Store contract.
//
// A rediss:// URL verifies the server's certificate against the system's
// roots. For a private CA, put it in the file named by SSL_CERT_FILE, or
// parse the URL with redis.ParseURL, set TLSConfig.RootCAs and pass the
// client to [NewRedisStore].
func OpenRedis(rawURL string, opts RedisOptions) (*RedisStore, error) {
	client, err := newRedisClient(rawURL)
	if err != nil {
		return nil, err
	}
	s, err := NewRedisStore(client, opts)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.ownsClient = true
	return s, nil
}

// Client returns the client the store uses.
func (s *RedisStore) Client() redis.UniversalClient { return s.client }

func (s *RedisStore) key(id string) string { return s.prefix + id }

// A record is stored as one string: its expiry as 13 decimal digits of
// Unix milliseconds, a '|', then Data. The header lets Get return the
// expiry with a plain GET, the cheapest read Redis has, instead of a GET
// and PTTL pipeline; Touch rewrites only those 13 bytes (SETRANGE), never
// the data. The key's own expiry is set to the same instant, so Redis
// still drops expired records by itself, and the value stays readable:
//
//	1764300000000|{"created":1764296400000,"values":{"user_id":42}}
const redisHeaderLen = 14

func redisValue(rec Record) []byte {
	v := make([]byte, redisHeaderLen, redisHeaderLen+len(rec.Data))
	putExpiry(v, rec.Expires)
	return append(v, rec.Data...)
}

func putExpiry(v []byte, t time.Time) {
	ms := t.UnixMilli()
	for i := 12; i >= 0; i-- {
		v[i] = byte('0' + ms%10)
		ms /= 10
	}
	v[13] = '|'
}

// parseRedisValue splits a stored value; ok is false for a value Set did
// not write (edited by hand, or another program's key under our prefix).
func parseRedisValue(v []byte) (rec Record, ok bool) {
	if len(v) < redisHeaderLen || v[13] != '|' {
		return Record{}, false
	}
	var ms int64
	for _, c := range v[:13] {
		if c < '0' || c > '9' {
			return Record{}, false
		}
		ms = ms*10 + int64(c-'0')
	}
	return Record{Data: v[redisHeaderLen:], Expires: time.UnixMilli(ms)}, true
}

// Get implements [Store] with one GET.
func (s *RedisStore) Get(ctx context.Context, id string) (Record, error) {
	v, err := s.client.Get(ctx, s.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, s.fail("get", err)
	}
	rec, ok := parseRedisValue(v)
	if !ok || !rec.Expires.After(time.Now()) {
		// Not ours, or past its expiry by our clock but not yet by
		// Redis's: either way, not a live record.
		return Record{}, ErrNotFound
	}
	return rec, nil
}

// Set implements [Store] with one SET … PXAT, so data and expiry are
// written together.
func (s *RedisStore) Set(ctx context.Context, id string, rec Record) error {
	if !rec.Expires.After(time.Now()) {
		return s.Destroy(ctx, id)
	}
	if rec.UserID != "" {
		_, err := s.writeBound(ctx, id, rec, func() redis.Cmder {
			return redis.NewStatusCmd(ctx, "set", s.key(id), redisValue(rec), "pxat", rec.Expires.UnixMilli())
		})
		return err
	}
	cmd := redis.NewStatusCmd(ctx, "set", s.key(id), redisValue(rec), "pxat", rec.Expires.UnixMilli())
	if err := s.client.Process(ctx, cmd); err != nil {
		return s.fail("set", err)
	}
	return nil
}

// Destroy implements [Store] with one DEL.
func (s *RedisStore) Destroy(ctx context.Context, id string) error {
	if err := s.client.Del(ctx, s.key(id)).Err(); err != nil {
		return s.fail("destroy", err)
	}
	return nil
}

// touchScript moves a record's expiry, header and key expiry together,
// only if the key exists and holds one of our records.
var touchScript = redis.NewScript(`
local v = redis.call('GETRANGE', KEYS[1], 0, 13)
if not string.find(v, '^%d%d%d%d%d%d%d%d%d%d%d%d%d|$') then return 0 end
redis.call('SETRANGE', KEYS[1], 0, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`)

// Touch implements [Store] with one script (EVALSHA) that rewrites the
// 13-byte expiry header and the key's expiry, leaving the data alone.
func (s *RedisStore) Touch(ctx context.Context, id string, expires time.Time) error {
	if !expires.After(time.Now()) {
		// Moving the expiry into the past ends the record.
		if _, err := s.Get(ctx, id); err != nil {
			return err
		}
		return s.Destroy(ctx, id)
	}
	var hdr [redisHeaderLen]byte
	putExpiry(hdr[:], expires)
	n, err := touchScript.Run(ctx, s.client, []string{s.key(id)}, hdr[:13], expires.UnixMilli()).Int()
	if err != nil {
		return s.fail("touch", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Count implements [Counter] by SCANning for the store's prefix on every
// master (on a Cluster, each master holds a share of the keys). It never
// uses KEYS, so it does not block the server, but it walks the whole
// keyspace: call it from an operator's view, not on a request path.
func (s *RedisStore) Count(ctx context.Context) (int64, error) {
	match := escapeGlob(s.prefix) + "*"
	count := func(ctx context.Context, c redis.Cmdable) (int64, error) {
		var n int64
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, s.countBatch).Result()
			if err != nil {
				return 0, s.fail("count", err)
			}
			n += int64(len(keys))
			if next == 0 {
				return n, nil
			}
			cursor = next
		}
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		var total atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			n, err := count(ctx, c)
			total.Add(n)
			return err
		})
		return total.Load(), err
	}
	return count(ctx, s.client)
}

// DeleteExpired implements [Cleaner]. Redis expires keys by itself, so it
// deletes nothing and returns 0.
func (s *RedisStore) DeleteExpired(ctx context.Context) (int64, error) { return 0, ctx.Err() }

// Ping implements [Pinger].
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Close closes the client if the store opened it ([OpenRedis]); a store
// made with [NewRedisStore] leaves the caller's client open.
func (s *RedisStore) Close() error {
	if s.ownsClient {
		err := s.client.Close()
		if errors.Is(err, redis.ErrClosed) {
			return nil
		}
		return err
	}
	return nil
}

// escapeGlob escapes the characters SCAN MATCH treats specially, so a
// prefix is matched literally.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fail wraps err from the operation op. On a Cluster it also asks the
// client to reload its slot map: go-redis reloads it only on a MOVED or
// ASK reply, or every ClusterStateReloadInterval (a minute by default), so
// after a master dies and its replica is promoted the client would keep
// dialling the dead master, failing every call on its slots, for up to a
// minute after the cluster itself has recovered. The reload runs in the
// background and go-redis coalesces concurrent requests for it.
func (s *RedisStore) fail(op string, err error) error {
	if cc, ok := s.client.(*redis.ClusterClient); ok && !errors.Is(err, redis.ErrClosed) {
		cc.ReloadState(context.Background())
	}
	return fmt.Errorf("session: redis %s: %w", op, err)
}

// String returns "redis" and the server's address (a Cluster's seed
// addresses, comma-separated), never credentials: how health reports and
// logs name the store.
func (s *RedisStore) String() string {
	switch c := s.client.(type) {
	case *redis.Client:
		return "redis " + c.Options().Addr
	case *redis.ClusterClient:
		return "redis " + strings.Join(c.Options().Addrs, ",")
	}
	return "redis"
}
