package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sessionkit/session"
)

func TestListRevokeUser(t *testing.T) {
	env := backendsEnv(t)
	if _, stderr, code := ctl(t, env, "migrate"); code != exitOK {
		t.Fatal(stderr)
	}
	pg, err := session.OpenPostgres(env["DATABASE_URL"], session.PostgresOptions{Table: env["SESSION_TABLE"], DisableCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	rs, err := session.OpenRedis(env["REDIS_URL"], session.RedisOptions{Prefix: env["SESSION_REDIS_PREFIX"]})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	data, _ := session.JSONCodec{}.Encode(fmt.Appendf(nil, `{"created":%d,"user":"u-42","ip":"203.0.113.9"}`, time.Now().UnixMilli()), nil)
	rec := session.Record{Data: data, Expires: time.Now().Add(time.Hour), UserID: "u-42"}
	for _, s := range []session.Store{pg, rs} {
		for _, id := range []string{strings.Repeat("a", 64), strings.Repeat("b", 64)} {
			if err := s.Set(t.Context(), id, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, code := ctl(t, env, "list"); code != exitUsage {
		t.Fatalf("list without -user: exit %d", code)
	}
	stdout, stderr, code := ctl(t, env, "list", "-user", "u-42")
	if code != exitOK || strings.Count(stdout, "\n") != 4 || !strings.Contains(stdout, "ip 203.0.113.9") || !strings.Contains(stdout, "postgres") || !strings.Contains(stdout, "redis") {
		t.Fatalf("list -user: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = ctl(t, env, "revoke", "-user", "u-42")
	if code != exitOK || !strings.Contains(stdout, `redis (127.0.0.1:6379): revoked 2 session(s) of user "u-42"`) || !strings.Contains(stdout, `postgres`) {
		t.Fatalf("revoke -user: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, _, code := ctl(t, env, "list", "-user", "u-42"); code != exitNotFound {
		t.Fatalf("list -user after revoke: exit %d, want %d", code, exitNotFound)
	}
	if _, err := rs.Get(t.Context(), strings.Repeat("a", 64)); err == nil {
		t.Fatal("a revoked session is still in Redis")
	}
}
