package express

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// RedisStore is a [session.Store] in connect-redis's layout (connect-redis
// 7), for the express-session mode ([New]): the key is the prefix
// and the raw sid, the value express's session JSON with no header, and
// the record's expiry is the key's TTL, which is the real expiry (express
// never rewrites cookie.expires on a touch, so the JSON's is routinely
// stale).
//
// A save is SET key json PXAT <unix ms> (connect-redis says EX <seconds>;
// Node reads neither, and an absolute time in milliseconds keeps the
// store's expiry precision), a touch PEXPIREAT (connect-redis: EXPIRE),
// a destroy DEL. Get reads the expiry with PEXPIRETIME (Redis 7; PTTL on
// older servers). CompareAndSet is a Lua script comparing the
// SHA-1 of the whole value, so Go processes still merge their concurrent
// writes; Node's writes are plain SETs, and between Node and Go the last
// writer wins.
//
// It implements [session.CompareAndSetter], [session.Counter],
// [session.Cleaner] (a no-op: Redis expires keys by itself),
// [session.Pinger] and [io.Closer]; not [session.UserIndex].
type RedisStore struct {
	// rs is package session's store on the same client and prefix: its
	// Count, Ping and Close (which closes a client it owns) serve this
	// layout too. It is never asked to read or write a record.
	rs        *session.RedisStore
	client    redis.UniversalClient
	prefix    string
	oldServer atomic.Bool // no PEXPIRETIME (Redis before 7): PTTL instead
}

// NewRedisStore returns a RedisStore on client with the key prefix of
// the Node app's RedisStore ("" is connect-redis's default, "sess:").
// The caller keeps ownership of client.
func NewRedisStore(client redis.UniversalClient, prefix string) (*RedisStore, error) {
	if client == nil {
		return nil, errors.New("express: NewRedisStore: client is nil")
	}
	if prefix == "" {
		prefix = "sess:"
	}
	rs, err := session.NewRedisStore(client, redisOptions(prefix))
	if err != nil {
		return nil, err
	}
	return wrapRedis(rs, prefix), nil
}

// redisOptions are the options of the session.RedisStore under a
// RedisStore: its prefix, and a user index prefix that differs from it in
// the first byte, so that the two never overlap (the index is never used).
func redisOptions(prefix string) session.RedisOptions {
	return session.RedisOptions{Prefix: prefix, UserPrefix: string([]byte{prefix[0] ^ 1}) + "-unused-users:"}
}

func wrapRedis(rs *session.RedisStore, prefix string) *RedisStore {
	return &RedisStore{rs: rs, client: rs.Client(), prefix: prefix}
}

func (s *RedisStore) key(id string) string { return s.prefix + id }

// fail wraps err from the operation op as session.RedisStore does with
// its own (on a Cluster it also reloads the slot map, so that a promoted
// replica is used at once).
func (s *RedisStore) fail(op string, err error) error { return ops.RedisFail(s.rs, op, err) }

// noTTL is the expiry of a key without a TTL (connect-redis's disableTTL):
// far enough never to come.
var noTTL = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Get implements [session.Store] with one pipeline: GET and PEXPIRETIME (Redis
// 7), or PTTL on an older server, which makes the expiry as exact as the
// round trip.
func (s *RedisStore) Get(ctx context.Context, id string) (session.Record, error) {
	var get *redis.StringCmd
	var when *redis.Cmd
	var ttl *redis.DurationCmd
	old := s.oldServer.Load()
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.key(id))
		if old {
			ttl = p.PTTL(ctx, s.key(id))
		} else {
			when = p.Do(ctx, "pexpiretime", s.key(id))
		}
		return nil
	})
	if errors.Is(get.Err(), redis.Nil) {
		return session.Record{}, session.ErrNotFound
	}
	if !old && when.Err() != nil && strings.Contains(strings.ToLower(when.Err().Error()), "unknown command") {
		s.oldServer.Store(true)
		return s.Get(ctx, id)
	}
	if err != nil {
		return session.Record{}, s.fail("get", err)
	}
	data, _ := get.Bytes()
	if data == nil {
		data = []byte{}
	}
	exp := noTTL
	if old {
		// go-redis passes PTTL's -2 (no key) and -1 (no TTL) through.
		switch d := ttl.Val(); {
		case d == -2:
			return session.Record{}, session.ErrNotFound
		case d > 0:
			exp = time.Now().Add(d)
		case d >= 0:
			return session.Record{}, session.ErrNotFound
		}
	} else {
		switch ms, _ := when.Int64(); {
		case ms == -2: // gone between the two commands
			return session.Record{}, session.ErrNotFound
		case ms > 0:
			exp = time.UnixMilli(ms)
		}
	}
	if !exp.After(time.Now()) {
		return session.Record{}, session.ErrNotFound
	}
	return session.Record{Data: data, Expires: exp}, nil
}

// maxPX caps a TTL at a century, which a time.Duration can still hold.
const maxPX = int64(100 * 365 * 24 * time.Hour / time.Millisecond)

// pxFor is the PX argument for an expiry: milliseconds from now, at least
// one; ok is false for an expiry not in the future.
func pxFor(exp time.Time) (int64, bool) {
	ms := time.Until(exp).Milliseconds()
	if ms <= 0 {
		return 0, false
	}
	return min(ms, maxPX), true
}

// pxat is the absolute expiry in Unix ms, capped as pxFor caps it.
func pxat(exp time.Time, px int64) int64 {
	if px == maxPX {
		return time.Now().UnixMilli() + px
	}
	return exp.UnixMilli()
}

// Set implements [session.Store] with one SET … PXAT.
func (s *RedisStore) Set(ctx context.Context, id string, rec session.Record) error {
	px, ok := pxFor(rec.Expires)
	if !ok {
		return s.Destroy(ctx, id)
	}
	data := rec.Data
	if data == nil {
		data = []byte{}
	}
	if err := s.client.Process(ctx, redis.NewStatusCmd(ctx, "set", s.key(id), data, "pxat", pxat(rec.Expires, px))); err != nil {
		return s.fail("set", err)
	}
	return nil
}

// Destroy implements [session.Store] with one DEL.
func (s *RedisStore) Destroy(ctx context.Context, id string) error {
	if err := s.client.Del(ctx, s.key(id)).Err(); err != nil {
		return s.fail("destroy", err)
	}
	return nil
}

// Touch implements [session.Store] with one PEXPIREAT, as connect-redis's touch is
// an EXPIRE: the JSON is not rewritten.
func (s *RedisStore) Touch(ctx context.Context, id string, expires time.Time) error {
	px, ok := pxFor(expires)
	if !ok {
		n, err := s.client.Del(ctx, s.key(id)).Result()
		if err != nil {
			return s.fail("touch", err)
		}
		if n == 0 {
			return session.ErrNotFound
		}
		return nil
	}
	set, err := s.client.PExpireAt(ctx, s.key(id), time.UnixMilli(pxat(expires, px))).Result()
	if err != nil {
		return s.fail("touch", err)
	}
	if !set {
		return session.ErrNotFound
	}
	return nil
}

// casScript compares the SHA-1 of the whole value with ARGV[1]
// ("none": the key must be absent), then SETs with PXAT ARGV[3] or, for
// "0", DELetes. One key: Cluster-safe.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == 'none' then
  if cur then return 0 end
elseif (not cur) or redis.sha1hex(cur) ~= ARGV[1] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
`)

// CompareAndSet implements [session.CompareAndSetter] with one script (EVALSHA).
func (s *RedisStore) CompareAndSet(ctx context.Context, id string, old []byte, rec session.Record) error {
	want := "none"
	if old != nil {
		sum := sha1.Sum(old)
		want = hex.EncodeToString(sum[:])
	}
	var at int64 // 0 when the expiry has passed: the script deletes
	if px, ok := pxFor(rec.Expires); ok {
		at = pxat(rec.Expires, px)
	}
	data := rec.Data
	if data == nil {
		data = []byte{}
	}
	n, err := casScript.Run(ctx, s.client, []string{s.key(id)}, want, data, at).Int()
	if err != nil {
		return s.fail("compare-and-set", err)
	}
	if n == 0 {
		return session.ErrConflict
	}
	return nil
}

// Count implements [session.Counter] by SCANning the prefix on every master,
// never with KEYS: an operator's call, not a request's.
func (s *RedisStore) Count(ctx context.Context) (int64, error) { return s.rs.Count(ctx) }

// DeleteExpired implements [session.Cleaner]: Redis expires keys by itself.
func (s *RedisStore) DeleteExpired(ctx context.Context) (int64, error) {
	return s.rs.DeleteExpired(ctx)
}

// Ping implements [session.Pinger].
func (s *RedisStore) Ping(ctx context.Context) error { return s.rs.Ping(ctx) }

// Close closes the client if the store opened it ([OpenStore]).
func (s *RedisStore) Close() error { return s.rs.Close() }

// Prefix returns the key prefix.
func (s *RedisStore) Prefix() string { return strings.Clone(s.prefix) }

// String returns "redis" and the server's address, never credentials, as
// session.RedisStore's: how health reports and logs name the store.
func (s *RedisStore) String() string { return s.rs.String() }
