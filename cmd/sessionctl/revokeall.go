package main

import (
	"context"
	"flag"
	"fmt"
	"time"
)

// revoke -all -yes: every session, through each backend's epoch, as
// session.Manager.RevokeAll does.

// epochStore is the epoch ability of the built-in stores (see
// Manager.RevokeAll).
type epochStore interface {
	Epoch(ctx context.Context) (int64, error)
	RaiseEpoch(ctx context.Context, to int64) (int64, error)
}

// revokeAll raises the epoch of every configured backend to one more
// than the highest, so that an app in any mode (select, tiered,
// failover) ends every session it has.
func revokeAll(c *cli, fs *flag.FlagSet, yes bool, user string, args []string, timeout time.Duration) int {
	if user != "" || len(args) != 0 {
		fs.Usage()
		return exitUsage
	}
	if !yes {
		c.errorf("revoke -all ends every session of every user, on every process of the app: add -yes to confirm")
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
	// One more than the highest epoch of any backend, so that every
	// backend ends up past every record it holds.
	var top int64
	for _, b := range bs {
		e, ok := b.store.(epochStore)
		if !ok {
			c.errorf("%s keeps no epoch", b)
			return exitFailure
		}
		v, err := e.Epoch(ctx)
		if err != nil {
			c.errorf("%s: %v", b, err)
			return exitFailure
		}
		top = max(top, v)
	}
	code := exitOK
	for _, b := range bs {
		v, err := b.store.(epochStore).RaiseEpoch(ctx, top+1)
		if err != nil {
			c.errorf("%s: %v", b, err)
			code = exitFailure
			continue
		}
		fmt.Fprintf(c.stdout, "%s: epoch %d: every session created before is ended\n", b, v)
	}
	if code != exitOK {
		c.errorf("incomplete: the backends above that failed still accept their sessions; retry when every backend answers")
		return code
	}
	fmt.Fprintln(c.stdout, "every process of the app stops accepting them within its Options.EpochInterval (5s by default, never more than twice that)")
	return exitOK
}
