package session

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds each built-in backend's CompareAndSet.

// CompareAndSet implements [CompareAndSetter].
func (m *MemoryStore) CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.write(id, rec, func(cur Record, live bool) bool {
		if old == nil {
			return !live
		}
		return live && bytes.Equal(cur.Data, old)
	})
}

// casScript compares the SHA-1 of the stored value with ARGV[1] ("none":
// the key must be absent) and only then writes, all in one step on the
// server. It touches one key, so it is Cluster-safe.
// The stored value is the 14-byte expiry header and the data (see
// redis.go); only the data is compared. A value without our header counts
// as absent.
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and not string.find(string.sub(cur, 1, 14), '^%d%d%d%d%d%d%d%d%d%d%d%d%d|$') then cur = false end
if ARGV[1] == 'none' then
  if cur then return 0 end
elseif (not cur) or redis.sha1hex(string.sub(cur, 15)) ~= ARGV[1] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
`)

// CompareAndSet implements [CompareAndSetter] with one Lua script
// (EVALSHA), which compares digests on the server so the old value never
// travels back.
func (s *RedisStore) CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error {
	want := "none"
	if old != nil {
		sum := sha1.Sum(old)
		want = hex.EncodeToString(sum[:])
	}
	pxat := "0"
	var value []byte
	if rec.Expires.After(time.Now()) {
		pxat = strconv.FormatInt(rec.Expires.UnixMilli(), 10)
		value = redisValue(rec)
	}
	var n int
	var err error
	if rec.UserID != "" && pxat != "0" {
		// A bound record: the index update rides in the same pipeline.
		var cmd redis.Cmder
		cmd, err = s.writeBound(ctx, id, rec, func() redis.Cmder {
			return redis.NewCmd(ctx, "evalsha", casScript.Hash(), 1, s.key(id), want, value, pxat)
		})
		if err == nil {
			n, err = cmd.(*redis.Cmd).Int()
		}
	} else {
		n, err = casScript.Run(ctx, s.client, []string{s.key(id)}, want, value, pxat).Int()
	}
	if err != nil {
		return s.fail("compare-and-set", err)
	}
	if n == 0 {
		return ErrConflict
	}
	return nil
}

// CompareAndSet implements [CompareAndSetter] with one statement: an
// UPDATE (or DELETE) guarded by the SHA-256 of the stored data, or, when
// old is nil, an INSERT that only replaces an expired row.
func (s *PostgresStore) CompareAndSet(ctx context.Context, id string, old []byte, rec Record) error {
	expired := !rec.Expires.After(time.Now())
	data := rec.Data
	if data == nil {
		data = []byte{}
	}
	var q string
	var args []any
	switch {
	case old == nil && expired:
		var live bool
		if err := s.pool.QueryRow(ctx, s.qLive, id).Scan(&live); err != nil {
			return fmt.Errorf("session: postgres compare-and-set: %w", err)
		}
		if live {
			return ErrConflict
		}
		return nil
	case old == nil:
		part, err := s.partitioned(ctx)
		if err != nil {
			return fmt.Errorf("session: postgres compare-and-set: %w", err)
		}
		if part {
			var n int64
			err := s.batch2(ctx, id, s.qCASInsertPart, []any{&n}, data, rec.Expires, userArg(rec.UserID))
			if isUniqueViolation(err) {
				// A first insert of this id by a writer that does not
				// take the id's lock (see partition.go): it won.
				return ErrConflict
			}
			if err != nil {
				return fmt.Errorf("session: postgres compare-and-set: %w", err)
			}
			if n == 0 {
				return ErrConflict
			}
			return nil
		}
		q, args = s.qCASInsert, []any{id, data, rec.Expires, userArg(rec.UserID)}
	case expired:
		sum := sha256.Sum256(old)
		q, args = s.qCASDelete, []any{id, sum[:]}
	default:
		sum := sha256.Sum256(old)
		q, args = s.qCASUpdate, []any{id, data, rec.Expires, sum[:], userArg(rec.UserID)}
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("session: postgres compare-and-set: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrConflict
	}
	return nil
}
