package session

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// A user's sessions on Redis.
//
// Each user has one sorted set, UserPrefix + "{" + user id + "}": its
// members are the ids of the user's sessions, each scored by the latest
// expiry (Unix ms) it was written with. The braces are a Cluster hash tag,
// so every key a user may ever have lives in one slot and a script on them
// stays legal on a Cluster; the session keys themselves keep their plain
// names, since a request finds its session by id alone.
//
// Why a sorted set scored by expiry, refreshed by writes:
//
//   - Touch does not know the user, and looking the user up in Touch would
//     cost unbound sessions a second key (or a second round trip). So the
//     index is kept by writes: every Set or CompareAndSet of a bound record
//     runs, in the same pipeline (one round trip), a script that raises the
//     member's score to the record's expiry (ZADD GT), drops members whose
//     score has passed, and sets the set's own expiry to its highest score.
//     The set therefore never expires before a session it lists, and
//     never outgrows the user's live sessions plus those that died (were
//     destroyed) since their expiry. The Manager refreshes a bound session
//     with a CompareAndSet rather than a Touch for this reason (it records
//     the last-seen time in the same write).
//   - A member whose key is gone (destroyed, or revoked while a write of it
//     was in flight) is harmless: ListUser reads every listed key and
//     returns only the live ones, and DestroyUser counts only keys it
//     actually deleted.
//   - The session write comes first in the pipeline and the index update
//     second; DestroyUser removes from the set only members whose key it
//     deleted. A login racing a revocation thus ends up either revoked or
//     listed, never live and unlisted.
//
// What this means for callers ([UserIndex] says it without Redis terms):
// Store.Touch does not know the user, so a bound session that is only
// touched is listed until the expiry of its last write; after that the
// index may lose it (the next write of the user prunes it, or the set
// itself expires) while its key, moved by the Touch, still lives. A
// caller that extends a bound session writes it instead, as the Manager
// does.
//
// Unbound sessions never touch any of this: their commands are exactly
// those of a store without users.

// userBatch bounds how many keys one pipeline of ListUser or DestroyUser
// carries, so a user with a million sessions costs bounded memory per round
// trip.
const userBatch = 10000

var userIndexScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('PEXPIREAT', KEYS[1], top[2]) end
return 1
`)

func (s *RedisStore) userKey(userID string) string { return s.userPrefix + "{" + userID + "}" }

// writeBound runs the write of a bound record (built by write) and its
// index update in one pipeline, and returns the write command. A script
// the server has forgotten (NOSCRIPT: that command did not run) is loaded
// and only the commands that did not run are sent again; the index update
// is idempotent either way.
func (s *RedisStore) writeBound(ctx context.Context, id string, rec Record, write func() redis.Cmder) (redis.Cmder, error) {
	index := func() redis.Cmder {
		return redis.NewCmd(ctx, "evalsha", userIndexScript.Hash(), 1, s.userKey(rec.UserID), id, rec.Expires.UnixMilli(), time.Now().UnixMilli())
	}
	run := func(cmds ...redis.Cmder) error {
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range cmds {
				p.Process(ctx, c)
			}
			return nil
		})
		return err
	}
	w, ix := write(), index()
	err := run(w, ix)
	if err != nil && (noScript(w) || noScript(ix)) {
		for _, sc := range []*redis.Script{casScript, userIndexScript} {
			if err := sc.Load(ctx, s.client).Err(); err != nil {
				return w, s.fail("script load", err)
			}
		}
		var again []redis.Cmder
		if noScript(w) {
			w = write()
			again = append(again, w)
		}
		if noScript(ix) {
			ix = index()
			again = append(again, ix)
		}
		err = run(again...)
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return w, s.fail("write", err)
	}
	return w, nil
}

func noScript(c redis.Cmder) bool { return redis.HasErrorPrefix(c.Err(), "NOSCRIPT") }

// ListUser implements [UserIndex]: one ZRANGE, then one pipeline of GETs
// (in batches of 10,000 ids), keeping the live records.
func (s *RedisStore) ListUser(ctx context.Context, userID string) ([]UserRecord, error) {
	ids, err := s.client.ZRange(ctx, s.userKey(userID), 0, -1).Result()
	if err != nil {
		return nil, s.fail("list user", err)
	}
	out := make([]UserRecord, 0, len(ids))
	for len(ids) > 0 {
		batch := ids[:min(len(ids), userBatch)]
		ids = ids[len(batch):]
		gets := make([]*redis.StringCmd, len(batch))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range batch {
				gets[i] = p.Get(ctx, s.key(id))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, s.fail("list user", err)
		}
		now := time.Now()
		for i, id := range batch {
			v, err := gets[i].Bytes()
			if err != nil {
				continue
			}
			rec, ok := parseRedisValue(v)
			if !ok || !rec.Expires.After(now) {
				continue
			}
			rec.UserID = userID
			out = append(out, UserRecord{ID: id, Record: rec})
		}
	}
	return out, nil
}

// DestroyUser implements [UserIndex] in three round trips whatever the
// number of sessions: one ZRANGE, one pipeline of UNLINK per listed id (in
// batches of 10,000), and one ZREM of the ids it deleted. UNLINK frees the
// values off the server's main thread. Each UNLINK is one key, so the
// pipeline works on a Cluster, where go-redis sends each node its share.
//
// Every id it returns was live: Redis drops expired keys itself.
func (s *RedisStore) DestroyUser(ctx context.Context, userID, except string) ([]string, error) {
	ukey := s.userKey(userID)
	ids, err := s.client.ZRange(ctx, ukey, 0, -1).Result()
	if err != nil {
		return nil, s.fail("destroy user", err)
	}
	var deleted []any
	for len(ids) > 0 {
		batch := ids[:min(len(ids), userBatch)]
		ids = ids[len(batch):]
		cmds := make([]*redis.IntCmd, len(batch))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range batch {
				if id != except {
					cmds[i] = p.Unlink(ctx, s.key(id))
				}
			}
			return nil
		})
		for i, c := range cmds {
			if c != nil && c.Val() == 1 {
				deleted = append(deleted, batch[i])
			}
		}
		if err != nil {
			return deletedIDs(deleted), s.fail("destroy user", err)
		}
	}
	if len(deleted) > 0 {
		// Members whose key was not there (expired, or a login whose
		// session write has not landed yet on another Cluster node) stay:
		// the first are pruned by score, the second must stay listed.
		if err := s.client.ZRem(ctx, ukey, deleted...).Err(); err != nil {
			return deletedIDs(deleted), s.fail("destroy user", err)
		}
	}
	return deletedIDs(deleted), nil
}

func deletedIDs(deleted []any) []string {
	ids := make([]string, len(deleted))
	for i, d := range deleted {
		ids[i] = d.(string)
	}
	return ids
}
