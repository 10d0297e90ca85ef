package session_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/audit"
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
	for _, w := range []struct {
		name string
		new  func(t testing.TB) session.Store
	}{{"direct", direct}, {"Open", viaOpen}} {
		t.Run("TwentyLoginsLimitThree/"+w.name, func(t *testing.T) { testLimitRace(t, w.new(t), false) })
		t.Run("TwentyLoginsLimitThreeRefusing/"+w.name, func(t *testing.T) { testLimitRace(t, w.new(t), true) })
	}
	// Expirations on every master: the watcher listens to each.
	t.Run("ExpiredOnEveryMaster/direct", func(t *testing.T) {
		s, prefix := openRedisStorePrefix(t, url)
		watch(t, s.WatchExpirations)
		testExpiredCluster(t, s, prefix)
	})
	t.Run("ExpiredOnEveryMaster/Open", func(t *testing.T) {
		env := map[string]string{"REDIS_URL": url, "SESSION_REDIS_PREFIX": randomName("sessiontest:") + ":"}
		b := openWith(t, env, session.OpenOptions{})
		watch(t, b.WatchExpirations)
		testExpiredCluster(t, b.Store, env["SESSION_REDIS_PREFIX"])
	})
}

// testExpiredCluster lets 30 bound sessions expire, spread over every
// master of the cluster, and waits for each one's event with its user.
func testExpiredCluster(t *testing.T, store session.Store, prefix string) {
	log := &eventLog{}
	a := newSecApp(t, store, session.Options{OnEvent: log.add, IdleTimeout: 500 * time.Millisecond})
	users := map[string]string{}
	for i := range 30 {
		u := fmt.Sprint("u", i)
		users[a.storeID(a.login(u))] = u
	}
	deadline := time.Now().Add(15 * time.Second)
	for id, u := range users {
		e := log.await(t, audit.Expired, id, time.Until(deadline))
		if e.UserID != u {
			t.Errorf("expired %s: user %q, want %q", id, e.UserID, u)
		}
	}
	slots := map[int]bool{}
	for id := range users {
		slots[int(crc16(prefix+id))%16384*3/16384] = true // the three masters own thirds of the slots
	}
	if len(slots) != 3 {
		t.Fatalf("the sessions did not spread over the three masters: %v", slots)
	}
}

// crc16 is Redis Cluster's key hash (CRC16-CCITT, XMODEM); a session key
// has no hash tag, so its slot is crc16 of its whole name mod 16384.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
