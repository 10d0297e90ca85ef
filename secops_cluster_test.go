package session_test

import (
	"context"
	"testing"

	"github.com/sessionkit/session"
)

// TestSecurityOpsCluster runs the security operations tests (issue 16) on
// a Redis Cluster of three masters and three replicas that it starts on
// ports 7300-7305, with keyspace notifications of expired keys on: the
// store directly and through Open.
func TestSecurityOpsCluster(t *testing.T) {
	c := startRedisClusterAt(t, secopsClusterPort, "--notify-keyspace-events", "Ex")
	url := "redis://" + c.addrs[0] + "?addr=" + c.addrs[1] + "&addr=" + c.addrs[2] +
		"&dial_timeout=300ms&read_timeout=1s&write_timeout=1s"
	direct := func(t testing.TB) session.Store { return openRedisStore(t, url) }
	viaOpen := func(t testing.TB) session.Store {
		env := map[string]string{"REDIS_URL": url, "SESSION_REDIS_PREFIX": randomName("sessiontest:") + ":"}
		cfg, err := session.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		b, err := session.Open(context.Background(), cfg, session.OpenOptions{Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if b.Name != "redis" {
			t.Fatalf("Open chose %s", b.Name)
		}
		return b.Store
	}
	for _, w := range []struct {
		name string
		new  func(t testing.TB) session.Store
	}{{"direct", direct}, {"Open", viaOpen}} {
		t.Run("RevokeAll/"+w.name, func(t *testing.T) { testRevokeAll(t, w.new(t)) })
	}
	t.Run("RevokeAllScale", func(t *testing.T) { revokeAllAtScale(t, "redis cluster", direct(t), revokeAllScaleN(t)) })
}
