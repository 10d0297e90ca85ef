package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"time"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/internal/ops"
)

// list -user and revoke -user: a user's sessions (issue 7), through each
// backend's session.UserIndex.

func init() {
	var user *string
	var asJSON *bool
	var timeout *time.Duration
	register(&command{
		name:  "list",
		args:  "-user <id>",
		short: "list a user's live sessions in every backend",
		summary: `List the live sessions bound to a user (Session.SetUser) in every
configured backend: store id, creation, expiry and the metadata the app
records (Options.Metadata). Exits 4 when the user has none.`,
		flags: func(fs *flag.FlagSet) {
			user = fs.String("user", "", "the user id the app passed to Session.SetUser (required)")
			asJSON = fs.Bool("json", false, "print JSON")
			timeout = fs.Duration("timeout", 10*time.Second, "give up after this long")
		},
		run: func(c *cli, fs *flag.FlagSet, args []string) int {
			return withUser(c, fs, *user, args, *timeout, func(ctx context.Context, b backend, ui session.UserIndex) (int, error) {
				recs, err := ui.ListUser(ctx, *user)
				if err != nil {
					return 0, err
				}
				printUserSessions(c, *asJSON, b, recs)
				return len(recs), nil
			}, func(total int) int {
				if total == 0 {
					c.errorf("no live session of user %q", *user)
					return exitNotFound
				}
				return exitOK
			})
		},
	})
}

// revokeUser is revoke -user: every session of the user, in every backend.
func revokeUser(c *cli, fs *flag.FlagSet, user string, args []string, timeout time.Duration) int {
	return withUser(c, fs, user, args, timeout, func(ctx context.Context, b backend, ui session.UserIndex) (int, error) {
		ids, err := ui.DestroyUser(ctx, user, "")
		n := len(ids)
		if err == nil {
			fmt.Fprintf(c.stdout, "%s: revoked %d session(s) of user %q\n", b, n, user)
		}
		return n, err
	}, func(total int) int { return exitOK })
}

// withUser opens the backends and calls do on each that can find a
// user's sessions; done maps the total to the exit code when all worked.
func withUser(c *cli, fs *flag.FlagSet, user string, args []string, timeout time.Duration,
	do func(ctx context.Context, b backend, ui session.UserIndex) (int, error), done func(total int) int) int {
	if user == "" || len(args) != 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, ok := c.config()
	if !ok {
		return exitConfig
	}
	bs, ok := c.persistentBackends(cfg)
	if !ok {
		return exitConfig
	}
	defer closeAll(bs)
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	total, code := 0, exitOK
	for _, b := range bs {
		ui, ok := b.store.(session.UserIndex)
		if !ok {
			continue
		}
		n, err := do(ctx, b, ui)
		if err != nil {
			c.errorf("%s: %v", b, err)
			code = exitFailure
			continue
		}
		total += n
	}
	if code != exitOK {
		return code
	}
	return done(total)
}

type userSessionJSON struct {
	ID        string    `json:"id"`
	Backend   string    `json:"backend"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	UserAgent string    `json:"user_agent,omitempty"`
	IP        string    `json:"ip,omitempty"`
}

func printUserSessions(c *cli, asJSON bool, b backend, recs []session.UserRecord) {
	out := make([]userSessionJSON, 0, len(recs))
	for _, r := range recs {
		u := userSessionJSON{ID: r.ID, Backend: b.name, Expires: r.Expires}
		if p, err := ops.DecodeRecord(r.Data); err == nil {
			u.Created, u.LastSeen, u.UserAgent, u.IP = p.Created, p.LastSeen, p.UserAgent, p.IP
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, u := range out {
			enc.Encode(u)
		}
		return
	}
	for _, u := range out {
		fmt.Fprintf(c.stdout, "%s  %s  created %s  expires %s", short(u.ID), b.name, u.Created.UTC().Format(time.RFC3339), u.Expires.UTC().Format(time.RFC3339))
		if !u.LastSeen.IsZero() {
			fmt.Fprintf(c.stdout, "  seen %s", u.LastSeen.UTC().Format(time.RFC3339))
		}
		if u.IP != "" {
			fmt.Fprintf(c.stdout, "  ip %s", u.IP)
		}
		if u.UserAgent != "" {
			fmt.Fprintf(c.stdout, "  %q", truncate(u.UserAgent, 60))
		}
		fmt.Fprintln(c.stdout)
	}
}
