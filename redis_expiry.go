package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Expirations on Redis, for audit.Expired (Options.OnEvent).

// expiryUserGrace is how long the user label of a bound session (see
// writeBound) outlives the session, so that the watcher can still read it
// when Redis announces the expiry.
const expiryUserGrace = time.Minute

// watchResync is how often a watcher on a Cluster looks for masters it
// does not yet listen to (a replica promoted, a node added).
const watchResync = 5 * time.Second

func (s *RedisStore) expiryUserKey(id string) string { return s.userPrefix + "exp:" + id }

// errNoKeyspaceEvents starts WatchExpirations' error when the server
// sends no expired-key events; the rest says what to do.
var errNoKeyspaceEvents = errors.New("session: Redis does not send expired-key notifications, so WatchExpirations would see nothing")

// WatchExpirations reports every session Redis expires to the Managers
// built on this store with [Options.OnEvent] ([audit.Expired]; UserID is
// the bound user, Reason is "", as Redis has dropped the record when it
// tells), from Redis keyspace notifications, until ctx ends or the store
// is closed. It returns nil then, and an error at once when the server
// does not send expired-key notifications: they are off by default, and
// need notify-keyspace-events to hold E and x ("Ex"; CONFIG SET
// notify-keyspace-events Ex, or the parameter group of a managed Redis).
// Where CONFIG is not allowed, it cannot check, and watches anyway. On a
// Cluster it listens to every master (set the parameter on every node,
// replicas too, which become masters on a failover), and to new masters
// as they appear, within five seconds.
//
// Run it on one process, in a goroutine of its own:
//
//	go func() {
//		if err := store.WatchExpirations(ctx); err != nil {
//			log.Println(err)
//		}
//	}()
//
// What Redis guarantees is little: a notification is sent once, to the
// subscribers connected at that moment, and never again (fire and
// forget). So a watcher that was down, or reconnecting, misses the
// expirations of that time, and every process that runs a watcher
// reports every expiration (run one, or de-duplicate by audit.Event.ID).
// Redis also expires a key only when it next touches it or its
// background cycle samples it, so the event may come a little after the
// expiry. To reconcile after an outage, compare the sessions your audit
// trail saw start ([audit.Created], [audit.Bound]) and never end with what
// the store still holds: a Get of each id (or Manager.UserSessions of
// each user) that finds nothing ended meanwhile, by expiry or by another
// process.
func (s *RedisStore) WatchExpirations(ctx context.Context) error {
	ctx, done, err := s.startWatch(ctx)
	if err != nil {
		return err
	}
	defer done()
	if _, ok := s.client.(*redis.Ring); ok {
		return errors.New("session: WatchExpirations does not support a redis.Ring")
	}
	cc, cluster := s.client.(*redis.ClusterClient)
	if !cluster {
		if err := checkKeyspaceEvents(ctx, s.client, addrOf(s.client)); err != nil {
			return err
		}
		s.listenExpired(ctx, s.client, s.expiredChannel())
		return nil
	}
	masters, err := clusterMasters(ctx, cc)
	if err != nil {
		return s.fail("watch expirations", err)
	}
	for addr, c := range masters {
		if err := checkKeyspaceEvents(ctx, c, addr); err != nil {
			return err
		}
	}
	// One listener per master, for as long as it is one.
	var wg sync.WaitGroup
	var mu sync.Mutex
	listening := map[string]bool{}
	channel := s.expiredChannel()
	t := time.NewTicker(watchResync)
	defer t.Stop()
	for {
		for addr, c := range masters {
			mu.Lock()
			if listening[addr] {
				mu.Unlock()
				continue
			}
			listening[addr] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.listenExpired(ctx, c, channel)
				mu.Lock()
				delete(listening, addr)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
		if m, err := clusterMasters(ctx, cc); err == nil {
			masters = m
		}
	}
}

// startWatch registers a watcher, so that Close stops it and waits for
// it: the returned ctx ends with ctx or at Close, and done must be
// called when the watcher has stopped.
func (s *RedisStore) startWatch(ctx context.Context) (context.Context, func(), error) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.closed {
		return nil, nil, errors.New("session: WatchExpirations: the store is closed")
	}
	ctx, cancel := context.WithCancel(ctx)
	k := s.watchNext
	s.watchNext++
	if s.watchers == nil {
		s.watchers = map[int]context.CancelFunc{}
	}
	s.watchers[k] = cancel
	s.watchWG.Add(1)
	return ctx, func() {
		cancel()
		s.watchMu.Lock()
		delete(s.watchers, k)
		s.watchMu.Unlock()
		s.watchWG.Done()
	}, nil
}

// stopWatchers ends every watcher and waits for it, for Close.
func (s *RedisStore) stopWatchers() {
	s.watchMu.Lock()
	s.closed = true
	for _, cancel := range s.watchers {
		cancel()
	}
	s.watchMu.Unlock()
	s.watchWG.Wait()
}

// expiredChannel is the channel of the client's database's expired-key
// events.
func (s *RedisStore) expiredChannel() string {
	db := 0
	if c, ok := s.client.(*redis.Client); ok {
		db = c.Options().DB
	}
	return fmt.Sprintf("__keyevent@%d__:expired", db)
}

// clusterMasters returns a client of every master, by address.
func clusterMasters(ctx context.Context, cc *redis.ClusterClient) (map[string]*redis.Client, error) {
	var mu sync.Mutex
	out := map[string]*redis.Client{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		out[c.Options().Addr] = c
		mu.Unlock()
		return nil
	})
	return out, err
}

func addrOf(c redis.UniversalClient) string {
	if rc, ok := c.(*redis.Client); ok {
		return rc.Options().Addr
	}
	return ""
}

// checkKeyspaceEvents returns an error saying what to do when the server
// at addr does not send expired-key events. A server that does not allow
// CONFIG (some managed services) is given the benefit of the doubt.
func checkKeyspaceEvents(ctx context.Context, c redis.Cmdable, addr string) error {
	cfg, err := c.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	flags := cfg["notify-keyspace-events"]
	if strings.Contains(flags, "E") && strings.ContainsAny(flags, "xA") {
		return nil
	}
	return fmt.Errorf("%w: notify-keyspace-events is %q on %s; turn expired events on with CONFIG SET notify-keyspace-events Ex (in redis.conf: notify-keyspace-events Ex; on a managed Redis, in its parameter group)",
		errNoKeyspaceEvents, flags, addr)
}

// listenExpired subscribes c to channel and reports the store's expired
// sessions until ctx ends, or until c is closed (a Cluster node that left).
// A broken connection is dialled again, and subscribed again, by go-redis
// on the next receive; what expired meanwhile is lost, as Redis says.
func (s *RedisStore) listenExpired(ctx context.Context, c redis.UniversalClient, channel string) {
	ps := c.Subscribe(ctx, channel)
	defer ps.Close()
	// A receive blocked on the connection does not see ctx end: closing
	// the subscription does end it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ps.Close()
	}()
	pause := 50 * time.Millisecond
	for {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = 50 * time.Millisecond
		id, ok := strings.CutPrefix(msg.Payload, s.prefix)
		if !ok || !s.expiries.watched() {
			continue
		}
		user, _ := s.client.Get(ctx, s.expiryUserKey(id)).Result()
		s.expiries.report([]expiredRecord{{ID: id, UserID: user}})
	}
}

// reportExpired implements expiryReporter: the sessions WatchExpirations
// sees expire.
func (s *RedisStore) reportExpired(fn func([]expiredRecord)) (stop func()) {
	return s.expiries.reportExpired(fn)
}

// WatchExpirations runs [RedisStore.WatchExpirations] on the Redis store
// that holds the sessions of b, when there is one (select mode on Redis,
// failover mode with Redis among its stores), until ctx ends or b is
// closed; it returns at once, with nil, when there is none (memory and
// Postgres report their expirations by themselves; in tiered mode Redis
// only caches copies, and Postgres reports). Run it in a goroutine of
// its own, on one process; see [RedisStore.WatchExpirations] for what
// Redis guarantees.
func (b *Backend) WatchExpirations(ctx context.Context) error {
	var stores []*RedisStore
	for _, r := range expiryReportersOf(b.Store) {
		if rs, ok := r.(*RedisStore); ok {
			stores = append(stores, rs)
		}
	}
	if len(stores) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(stores))
	for _, rs := range stores {
		go func() { errs <- rs.WatchExpirations(ctx) }()
	}
	var first error
	for range stores {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // one cannot watch: stop the others, and say why
		}
	}
	return first
}
