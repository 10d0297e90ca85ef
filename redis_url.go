package session

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// newRedisClient builds a client from a URL of the forms [OpenRedis]
// takes, without contacting the server, with ContextTimeoutEnabled.
func newRedisClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("session: malformed Redis URL %q", redactURL(rawURL))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("session: Redis URL %s: scheme must be redis or rediss", redactURL(rawURL))
	}
	q := u.Query()
	cluster := q.Get("cluster") == "true" || q.Get("cluster") == "1"
	q.Del("cluster")
	u.RawQuery = q.Encode()
	clean := u.String()
	wrap := func(err error) error {
		// go-redis errors may quote the URL; never pass them through.
		msg := strings.ReplaceAll(err.Error(), clean, redactURL(clean))
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
		return fmt.Errorf("session: Redis URL %s: %s", redactURL(rawURL), msg)
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

// redactURL returns rawURL with any password replaced by "xxxxx", for
// logs and error messages. A URL that does not parse is reduced to
// "<unparseable URL>" so that nothing in it can leak.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "<unparseable URL>"
	}
	return u.Redacted()
}
