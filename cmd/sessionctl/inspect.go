package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// sessionFlags are the flags inspect and revoke share.
type sessionFlags struct {
	cookieName *string
	storeID    *bool
	encrypted  *bool
	timeout    *time.Duration
}

func (f *sessionFlags) declare(fs *flag.FlagSet) {
	f.cookieName = fs.String("cookie-name", "session", "the app's cookie name (Options.CookieName): part of what the signature covers")
	f.storeID = fs.Bool("store-id", false, "the argument is the store id (Session.ID(), the hex SHA-256 an app may log), not a cookie value")
	f.encrypted = fs.Bool("encrypted", false, "the app encrypts its cookies: KeyFromSecret(SESSION_SECRET, true)")
	f.timeout = fs.Duration("timeout", 10*time.Second, "give up after this long")
}

const valueHelp = `The argument is the cookie's value as the browser holds it (a "name="
prefix is accepted); it is verified with SESSION_SECRET, so a forged or
mistyped value is refused, never looked up. With -store-id it is the
session's store id instead.`

func init() {
	var f sessionFlags
	var asJSON *bool
	register(&command{
		name:  "inspect",
		args:  "<cookie value>",
		short: "verify a cookie value with SESSION_SECRET; show its session",
		summary: `Show a session: where it lives, when it was created and expires, and its
values. Exits 4 when the value does not verify or no backend holds a live
session for it.

` + valueHelp,
		flags: func(fs *flag.FlagSet) {
			f.declare(fs)
			asJSON = fs.Bool("json", false, "print JSON")
		},
		run: func(c *cli, fs *flag.FlagSet, args []string) int {
			return withSession(c, fs, f, args, func(ctx context.Context, id string, bs []backend) int {
				found := false
				code := exitOK
				for _, b := range bs {
					rec, err := b.store.Get(ctx, id)
					if errors.Is(err, session.ErrNotFound) {
						continue
					}
					if err != nil {
						c.errorf("%s: %v", b, err)
						code = exitFailure
						continue
					}
					found = true
					printSession(c, *asJSON, id, b, rec)
				}
				if !found && code == exitOK {
					c.errorf("no live session for this value in %s (expired, logged out or revoked)", names(bs))
					return exitNotFound
				}
				return code
			})
		},
	})

	var rf sessionFlags
	var ruser *string
	register(&command{
		name:  "revoke",
		args:  "<cookie value> | -user <id>",
		short: "verify a cookie value; destroy its session in every backend (or all of a user's)",
		summary: `Destroy a session in every configured backend, so that the cookie is
worth nothing from now on. Revoking a session that no longer exists
succeeds (exit 0) and says so. Exits 1 if any backend could not be reached:
the session may still be live there. With -user, every session bound
to that user (Session.SetUser) instead: password change, ban, "sign out
everywhere".

` + valueHelp,
		flags: func(fs *flag.FlagSet) {
			rf.declare(fs)
			ruser = fs.String("user", "", "revoke every session of this user id instead of one cookie value")
		},
		run: func(c *cli, fs *flag.FlagSet, args []string) int {
			if *ruser != "" {
				return revokeUser(c, fs, *ruser, args, *rf.timeout)
			}
			return withSession(c, fs, rf, args, func(ctx context.Context, id string, bs []backend) int {
				code := exitOK
				var live []string
				for _, b := range bs {
					if _, err := b.store.Get(ctx, id); err == nil {
						live = append(live, b.name)
					}
					if err := b.store.Destroy(ctx, id); err != nil {
						c.errorf("%s: %v", b, err)
						code = exitFailure
					}
				}
				switch {
				case code != exitOK:
					c.errorf("revocation incomplete: retry when every backend answers")
				case len(live) == 0:
					fmt.Fprintf(c.stdout, "no live session %s in %s: nothing to revoke\n", short(id), names(bs))
				default:
					fmt.Fprintf(c.stdout, "revoked session %s (was live in %s)\n", short(id), strings.Join(live, ", "))
				}
				return code
			})
		},
	})
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// withSession checks the argument, verifies it and opens the backends,
// then calls do with the store id.
func withSession(c *cli, fs *flag.FlagSet, f sessionFlags, args []string, do func(ctx context.Context, id string, bs []backend) int) int {
	if len(args) != 1 || args[0] == "" {
		fs.Usage()
		return exitUsage
	}
	cfg, ok := c.config()
	if !ok {
		return exitConfig
	}
	var id string
	if *f.storeID {
		id = strings.ToLower(args[0])
		if !hexID.MatchString(id) {
			c.errorf("a store id is 64 hex digits")
			return exitUsage
		}
	} else {
		if len(cfg.Secret) == 0 {
			c.errorf("SESSION_SECRET is needed to verify a cookie value (or pass -store-id with the session's store id)")
			return exitConfig
		}
		token, err := verify(cfg, *f.cookieName, *f.encrypted, args[0])
		if err != nil {
			c.errorf("%v", err)
			return exitNotFound
		}
		id = ops.StoreID(token)
	}
	bs, ok := c.persistentBackends(cfg)
	if !ok {
		return exitConfig
	}
	defer closeAll(bs)
	ctx, cancel := context.WithTimeout(c.ctx, *f.timeout)
	defer cancel()
	return do(ctx, id, bs)
}

// verify returns the token inside a cookie value signed (and, with
// encrypted, encrypted) with the configured secret, as the app's
// session.New with KeyFromSecret(SESSION_SECRET, encrypted) makes it.
func verify(cfg session.Config, cookieName string, encrypted bool, value string) (string, error) {
	value = strings.TrimSpace(value)
	value = strings.TrimPrefix(value, cookieName+"=")
	opts, err := cfg.Options()
	if err != nil {
		return "", err
	}
	keys := opts.Keys
	if encrypted {
		// Options signs only; an app that encrypts derives its pairs so.
		keys = nil
		for _, s := range append([]session.Secret{cfg.Secret}, cfg.PreviousSecrets...) {
			k, err := session.KeyFromSecret(string(s), true)
			if err != nil {
				return "", err
			}
			keys = append(keys, k)
		}
	}
	token, err := ops.DecodeCookie(keys, cookieName, value)
	if err != nil {
		return "", fmt.Errorf("the value does not verify with SESSION_SECRET for cookie %q: a forged or truncated value, another secret, another cookie name (-cookie-name) or an encrypted cookie (-encrypted)", cookieName)
	}
	return token, nil
}

type sessionJSON struct {
	ID        string         `json:"id"`
	Backend   string         `json:"backend"`
	Addr      string         `json:"addr,omitempty"`
	Created   time.Time      `json:"created"`
	Expires   time.Time      `json:"expires"`
	Transient bool           `json:"transient"`
	Values    map[string]any `json:"values"`
	Raw       string         `json:"raw,omitempty"` // when the payload does not decode
}

func printSession(c *cli, asJSON bool, id string, b backend, rec session.Record) {
	out := sessionJSON{ID: id, Backend: b.name, Addr: b.addr, Expires: rec.Expires}
	p, err := ops.DecodeRecord(rec.Data)
	if err != nil {
		out.Raw = string(rec.Data)
	} else {
		out.Created, out.Transient, out.Values = p.Created, p.Transient, p.Values
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return
	}
	now := time.Now()
	w := c.stdout
	fmt.Fprintf(w, "session   %s\n", id)
	fmt.Fprintf(w, "backend   %s\n", b)
	if !out.Created.IsZero() {
		fmt.Fprintf(w, "created   %s (%s ago)\n", out.Created.UTC().Format(time.RFC3339), now.Sub(out.Created).Round(time.Second))
	}
	fmt.Fprintf(w, "expires   %s (in %s, unless used again)\n", rec.Expires.UTC().Format(time.RFC3339), rec.Expires.Sub(now).Round(time.Second))
	if out.Raw != "" {
		fmt.Fprintf(w, "payload   not the JSON codec's (%v): %q\n", err, truncate(out.Raw, 200))
		return
	}
	if out.Transient {
		fmt.Fprintln(w, "cookie    browser-session (remember-me off)")
	} else {
		fmt.Fprintln(w, "cookie    persistent")
	}
	keys := make([]string, 0, len(out.Values))
	for k := range out.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "values    %d\n", len(keys))
	for _, k := range keys {
		v, _ := json.Marshal(out.Values[k])
		fmt.Fprintf(w, "  %s = %s\n", k, truncate(string(v), 200))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func short(id string) string { return id[:12] + "…" }

func names(bs []backend) string {
	var ns []string
	for _, b := range bs {
		ns = append(ns, b.name)
	}
	return strings.Join(ns, " and ")
}

// scrubErr removes rawURL's password from err's message, should a driver
// quote it.
func scrubErr(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if err == nil || perr != nil || u.User == nil {
		return err
	}
	if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(err.Error(), pw) {
		return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
	}
	return err
}
