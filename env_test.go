package session_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/sessionkit/session"
)

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func itoa(n int) string { return strconv.Itoa(n) }

var longSecret = strings.Repeat("k", 32)

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("APP_ENV", "development")
	t.Setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
	c, err := session.ConfigFromEnv(nil)
	if err != nil || c.Production || c.RedisURL == "" || c.Mode != session.ModeSelect || c.Table != "sessions" || c.RedisPrefix != "session:" {
		t.Fatalf("ConfigFromEnv = %v, %v", c, err)
	}
}

func TestConfigFromLookup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		check func(c session.Config) string
		err   string // substring of the error; "" for none
	}{
		{name: "empty is development with memory", env: map[string]string{}, check: func(c session.Config) string {
			if c.Production || c.RedisURL != "" || c.DatabaseURL != "" {
				return "not empty"
			}
			return ""
		}},
		{name: "GO_ENV production", env: map[string]string{"GO_ENV": "production", "SESSION_SECRET": longSecret, "DATABASE_URL": "postgres://h/db"}, check: func(c session.Config) string {
			if !c.Production {
				return "not production"
			}
			return ""
		}},
		{name: "APP_ENV wins", env: map[string]string{"APP_ENV": "staging", "GO_ENV": "production"}, check: func(c session.Config) string {
			if c.Production {
				return "production"
			}
			return ""
		}},
		{name: "REDIS_HOST", env: map[string]string{"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_PASSWORD": "p@ss/word"}, check: func(c session.Config) string {
			if !strings.HasPrefix(c.RedisURL, "redis://") || !strings.Contains(c.RedisURL, "cache:6380") {
				return c.RedisURL
			}
			rc, err := session.NewRedisClient(c.RedisURL)
			if err != nil {
				return err.Error()
			}
			rc.Close()
			return ""
		}},
		{name: "REDIS_URL wins over REDIS_HOST", env: map[string]string{"REDIS_URL": "redis://a:1/0", "REDIS_HOST": "b"}, check: func(c session.Config) string {
			if !strings.Contains(c.RedisURL, "a:1") {
				return c.RedisURL
			}
			return ""
		}},
		{name: "Upstash is TLS", env: map[string]string{"UPSTASH_REDIS_HOST": "https://eu1-x.upstash.io", "UPSTASH_REDIS_PASSWORD": "tok"}, check: func(c session.Config) string {
			if c.RedisURL != "rediss://default:tok@eu1-x.upstash.io:6379" {
				return c.RedisURL
			}
			return ""
		}},
		{name: "pooler and direct", env: map[string]string{"DATABASE_URL": "postgres://u:pw@pooler:6543/db?default_query_exec_mode=exec", "DIRECT_URL": "postgres://u:pw@db:5432/db"}, check: func(c session.Config) string {
			if c.DirectURL == "" {
				return "no direct URL"
			}
			return ""
		}},
		{name: "tiered", env: map[string]string{"SESSION_BACKEND": "Tiered", "REDIS_URL": "redis://a:1", "DATABASE_URL": "postgres://h/db"}, check: func(c session.Config) string {
			if c.Mode != session.ModeTiered {
				return string(c.Mode)
			}
			return ""
		}},
		{name: "bad redis URL", env: map[string]string{"REDIS_URL": "http://u:hunter2@h:1"}, err: "REDIS_URL"},
		{name: "bad database URL", env: map[string]string{"DATABASE_URL": "postgres://u:hunter2@h:port/db"}, err: "DATABASE_URL"},
		{name: "bad direct URL", env: map[string]string{"DATABASE_URL": "postgres://h/db", "DIRECT_URL": "postgres://u:hunter2@h:port/db"}, err: "DIRECT_URL"},
		{name: "direct without database", env: map[string]string{"DIRECT_URL": "postgres://h/db"}, err: "DATABASE_URL is not"},
		{name: "bad port", env: map[string]string{"REDIS_HOST": "h", "REDIS_PORT": "http", "REDIS_PASSWORD": "hunter2"}, err: "REDIS_PORT"},
		{name: "production needs secret", env: map[string]string{"APP_ENV": "production", "DATABASE_URL": "postgres://h/db"}, err: "SESSION_SECRET is required"},
		{name: "production short secret", env: map[string]string{"APP_ENV": "prod", "SESSION_SECRET": "hunter2", "DATABASE_URL": "postgres://h/db"}, err: "SESSION_SECRET is 7 bytes"},
		{name: "production needs a persistent store", env: map[string]string{"APP_ENV": "production", "SESSION_SECRET": longSecret}, err: "persistent session store"},
		{name: "production memory forced", env: map[string]string{"APP_ENV": "production", "SESSION_SECRET": longSecret, "SESSION_ALLOW_MEMORY": "true"}},
		{name: "bad bool", env: map[string]string{"FORCE_PERSISTENT_SESSIONS": "yes please"}, err: "FORCE_PERSISTENT_SESSIONS"},
		{name: "bad mode", env: map[string]string{"SESSION_BACKEND": "magic"}, err: "SESSION_BACKEND"},
		{name: "tiered needs both", env: map[string]string{"SESSION_BACKEND": "tiered", "REDIS_URL": "redis://a:1"}, err: "needs both"},
		{name: "bad table", env: map[string]string{"SESSION_TABLE": "Robert'); DROP"}, err: "SESSION_TABLE"},
		{name: "bad timeout", env: map[string]string{"SESSION_BACKEND_TIMEOUT": "soon"}, err: "SESSION_BACKEND_TIMEOUT"},
		{name: "bad cookie domain", env: map[string]string{"COOKIE_DOMAIN": "https://example.com"}, err: "COOKIE_DOMAIN"},
		{name: "cookie domain net/http drops", env: map[string]string{"COOKIE_DOMAIN": "exam_ple.com"}, err: "COOKIE_DOMAIN"},
		{name: "negative timeout", env: map[string]string{"SESSION_BACKEND_TIMEOUT": "-3s"}, err: "SESSION_BACKEND_TIMEOUT"},
		{name: "cookie domain", env: map[string]string{"COOKIE_DOMAIN": ".example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := session.ConfigFromEnv(lookupMap(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				if msg := tc.check(c); msg != "" {
					t.Fatal(msg)
				}
			}
		})
	}
}

// TestConfigNeverPrintsSecrets: every way of printing or logging a Config
// hides passwords and the secret.
func TestConfigNeverPrintsSecrets(t *testing.T) {
	c, err := session.ConfigFromEnv(lookupMap(map[string]string{
		"APP_ENV":        "production",
		"SESSION_SECRET": "topsecret-topsecret-topsecret-topsecret",
		"REDIS_URL":      "redis://:redispw1@r:6379/0",
		"DATABASE_URL":   "postgres://u:pgpw1@pooler:6543/db",
		"DIRECT_URL":     "postgres://u:pgpw2@db:5432/db",
	}))
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	logger.Info("config", "cfg", c, "secret", c.Secret)
	slog.New(slog.NewJSONHandler(logs, nil)).Info("config", "cfg", c)
	out := fmt.Sprintf("%v %+v %#v %s %x %v", c, c, c, c, c.Secret, c.Secret) + logs.String()
	for _, s := range []string{"topsecret", "redispw1", "pgpw1", "pgpw2"} {
		if strings.Contains(out, s) {
			t.Errorf("%q printed:\n%s", s, out)
		}
	}
	if !strings.Contains(logs.String(), "pooler:6543") {
		t.Errorf("log lacks the database host:port:\n%s", logs)
	}
}

// TestOpenModes opens each mode on memory-only and fake configurations,
// without servers.
func TestOpenModesWithoutServers(t *testing.T) {
	logger, _ := newLogger()
	c, err := session.ConfigFromEnv(lookupMap(map[string]string{"SESSION_BACKEND": "failover"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := session.Open(tctx(t), c, session.OpenOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != string(session.ModeFailover) || b.Active() != "memory" {
		t.Errorf("failover: %s active %s", b.Name, b.Active())
	}
	mustDo(t, b.Close())
	mustDo(t, b.Close())

	c, _ = session.ConfigFromEnv(lookupMap(map[string]string{"FORCE_PERSISTENT_SESSIONS": "1"}))
	if _, err := session.Open(tctx(t), c, session.OpenOptions{Logger: logger}); err == nil || !strings.Contains(err.Error(), "FORCE_PERSISTENT_SESSIONS") {
		t.Errorf("FORCE_PERSISTENT_SESSIONS without a store: %v", err)
	}
}

// TestSecretRotationFromEnv: with the old secret moved to
// SESSION_SECRET_PREVIOUS, cookies it signed still work and new cookies
// are signed with the new one; once it is dropped they start fresh.
func TestSecretRotationFromEnv(t *testing.T) {
	const oldSecret = "the-old-secret-the-old-secret-the-old-secret"
	const newSecret = "the-new-secret-the-new-secret-the-new-secret"
	cfg := func(env map[string]string) session.Config {
		t.Helper()
		c, err := session.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, bad := range []map[string]string{
		{"SESSION_SECRET": newSecret, "SESSION_SECRET_PREVIOUS": "short"},
		{"SESSION_SECRET_PREVIOUS": oldSecret},
	} {
		_, err := session.ConfigFromEnv(func(k string) (string, bool) { v, ok := bad[k]; return v, ok })
		if err == nil || strings.Contains(err.Error(), oldSecret) {
			t.Errorf("%v: err = %v; want a clear error without the secret", bad, err)
		}
	}
	store := memStore(t)
	serve := func(c session.Config, cookie string) (string, string) {
		opts, err := c.Options()
		if err != nil {
			t.Fatal(err)
		}
		opts.Logger = discardLogger()
		m, err := session.New(store, opts)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := session.From(r)
			user := s.GetString("user")
			if user == "" {
				s.Put("user", "ada")
			}
			io.WriteString(w, user)
		})).ServeHTTP(rec, req)
		if c := rec.Result().Cookies(); len(c) > 0 {
			return "session=" + c[0].Value, rec.Body.String()
		}
		return "", rec.Body.String()
	}
	before := cfg(map[string]string{"SESSION_SECRET": oldSecret})
	during := cfg(map[string]string{"SESSION_SECRET": newSecret, "SESSION_SECRET_PREVIOUS": " " + oldSecret + " ,another-retired-secret-of-32-bytes-or-more"})
	after := cfg(map[string]string{"SESSION_SECRET": newSecret})
	if opts, _ := during.Options(); len(opts.Keys) != 3 {
		t.Fatalf("Keys = %d pairs, want 3", len(opts.Keys))
	}
	oldCookie, _ := serve(before, "")
	if _, body := serve(during, oldCookie); body != "ada" {
		t.Fatalf("cookie signed with the previous secret refused during rotation: %q", body)
	}
	if _, body := serve(after, oldCookie); body != "" {
		t.Fatalf("cookie signed with a dropped secret accepted: %q", body)
	}
	newCookie, _ := serve(during, "")
	if _, body := serve(after, newCookie); body != "ada" {
		t.Fatal("a cookie issued during rotation is not signed with the new secret")
	}
}
