package session

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NewRedisClient builds a client from a URL, without contacting the server:
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
func NewRedisClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("session: malformed Redis URL %q", RedactURL(rawURL))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("session: Redis URL %s: scheme must be redis or rediss", RedactURL(rawURL))
	}
	q := u.Query()
	cluster := q.Get("cluster") == "true" || q.Get("cluster") == "1"
	q.Del("cluster")
	u.RawQuery = q.Encode()
	clean := u.String()
	wrap := func(err error) error {
		// go-redis errors may quote the URL; never pass them through.
		msg := strings.ReplaceAll(err.Error(), clean, RedactURL(clean))
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
		return fmt.Errorf("session: Redis URL %s: %s", RedactURL(rawURL), msg)
	}
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(clean)
		if err != nil {
			return nil, wrap(err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(o), nil
	case cluster || q.Has("addr"):
		o, err := redis.ParseClusterURL(clean)
		if err != nil {
			return nil, wrap(err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(clean)
		if err != nil {
			return nil, wrap(err)
		}
		o.ContextTimeoutEnabled = true
		return redis.NewClient(o), nil
	}
}

// RedactURL returns rawURL with any password replaced by "xxxxx", for
// logs and error messages. A URL that does not parse is reduced to
// "<unparseable URL>" so that nothing in it can leak.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "<unparseable URL>"
	}
	return u.Redacted()
}
