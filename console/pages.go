package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/health"
	"github.com/sessionkit/session/internal/ops"
)

// The phrase an operator types to end every session.
const endAllPhrase = "end every session"

// maxStoreID bounds a store id the console looks up, in bytes: the
// built-in hasher's are 64 hex digits.
const maxStoreID = 512

// maxUserID is the longest user id package session accepts, in bytes
// (Session.SetUser's rule): the console refuses a longer one before any
// store call.
const maxUserID = 256

// maxForm bounds the body of an action.
const maxForm = 16 << 10

// counter is one named counter, for the overview.
type counter struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
}

// counters lists the int64 fields of the struct v, named by their JSON
// name or, without one, in snake_case, so that a counter added to
// session's stats shows without a change here. A field its JSON omits
// when empty is left out when zero, as JSON leaves it out.
func counters(v any) []counter {
	rv := reflect.ValueOf(v)
	var out []counter
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.Int64 {
			continue
		}
		name, flags, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			name = snake(f.Name)
		}
		if strings.Contains(flags, "omitempty") && rv.Field(i).Int() == 0 {
			continue // a counter of another kind of store (a tiered store's cache hits)
		}
		out = append(out, counter{name, rv.Field(i).Int()})
	}
	return out
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// failure is one of the store's recent failures.
type failure struct {
	Time  time.Time `json:"time"`
	Op    string    `json:"op"`
	Error string    `json:"error"`
}

// overviewData is the overview page, and its JSON.
type overviewData struct {
	// Backend is the chosen backend ("redis", "postgres", "memory") or
	// the mode ("tiered", "failover").
	Backend string `json:"backend"`
	// Active is the backend requests go to now.
	Active string `json:"active"`
	// Status is "ok", "degraded" or "down".
	Status health.Status `json:"status"`
	// Backends reports each backend: reachable, latency, live sessions.
	Backends []health.Backend `json:"backends"`
	// LiveSessions counts the live sessions of the active backend, when
	// it can count.
	LiveSessions *int64 `json:"live_sessions,omitempty"`
	// Attempts is what became of each backend at startup, when the app
	// gave the console its session.Backend.
	Attempts []ops.Attempt `json:"attempts,omitempty"`
	// Manager and Store are the manager's and the store's counters.
	Manager []counter `json:"manager"`
	Store   []counter `json:"store,omitempty"`
	// RecentFailures are the store's last failed calls, newest first
	// (stores from session.Open remember 20).
	RecentFailures []failure `json:"recent_failures"`
	// FailuresKept is false when the store does not remember failures.
	FailuresKept bool `json:"failures_kept"`
	// CanListUsers says whether the store can find a user's sessions.
	CanListUsers bool `json:"can_list_users"`
	// Policy is the manager's session policy: timeouts, the per-user
	// limit, lifecycle events.
	Policy policy `json:"policy"`
	// CheckedAt is when the backends were checked.
	CheckedAt time.Time `json:"checked_at"`

	Notice string `json:"-"`
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	rep := health.Check(ctx, c.store, health.Options{CountSessions: true, Timeout: c.opts.Timeout})
	d := overviewData{
		Backend:   rep.Active,
		Active:    rep.Active,
		Status:    rep.Status,
		Backends:  rep.Backends,
		Manager:   counters(c.m.Stats()),
		CheckedAt: time.Now(),
		Notice:    notice(r),
	}
	if b := c.opts.Backend; b != nil {
		d.Backend, d.Active, d.Attempts = b.Name, b.Active(), ops.Attempts(b)
	}
	for _, b := range rep.Backends {
		if b.Active && b.Sessions != nil {
			d.LiveSessions = b.Sessions
		}
	}
	if rep.Stats != nil {
		d.Store = counters(*rep.Stats)
	}
	fs := ops.RecentFailures(c.store)
	d.FailuresKept = fs != nil
	d.RecentFailures = []failure{}
	for _, f := range fs {
		d.RecentFailures = append(d.RecentFailures, failure{f.Time, f.Op, f.Error})
	}
	_, d.CanListUsers = c.store.(session.UserIndex)
	d.Policy = policyOf(c.m.Options())
	c.render(w, r, http.StatusOK, "overview", "Overview", d)
}

// policy is what the manager's options say about sessions' lives.
type policy struct {
	IdleTimeout string `json:"idle_timeout"`
	Lifetime    string `json:"lifetime"`
	// MaxUserSessions is the per-user limit; 0 is none.
	MaxUserSessions int `json:"max_user_sessions"`
	// OverLimit is what a login over the limit does: "end the least
	// recently used" or "refused".
	OverLimit string `json:"over_limit,omitempty"`
	// Events says whether lifecycle events go to Options.OnEvent.
	Events bool `json:"events"`
	// EventQueue is their queue's size, when they do.
	EventQueue int `json:"event_queue,omitempty"`
}

func policyOf(o session.Options) policy {
	p := policy{IdleTimeout: o.IdleTimeout.String(), Lifetime: o.Lifetime.String(),
		MaxUserSessions: o.MaxUserSessions, Events: o.OnEvent != nil}
	if o.Lifetime == 0 {
		p.Lifetime = "none"
	}
	if p.MaxUserSessions > 0 {
		p.OverLimit = "end the least recently used"
		if o.RefuseOverLimit {
			p.OverLimit = "refuse the new login"
		}
	}
	if p.Events {
		p.EventQueue = o.EventQueue
	}
	return p
}

// notice is the line a page shows after an action, from the ended
// parameter of the redirect: a number or "all", nothing else echoed.
func notice(r *http.Request) string {
	v := r.URL.Query().Get("ended")
	if v == "all" {
		return "Every session was ended."
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 0:
		return ""
	case n == 1:
		return "Ended 1 session."
	default:
		return "Ended " + strconv.Itoa(n) + " sessions."
	}
}

// checkUser returns a message for a user id the console will not look up
// (too long, or not text); "" for one it passes to the Manager, which
// checks the rest.
func checkUser(id string) string {
	switch {
	case id == "":
		return "a user id is required"
	case len(id) > maxUserID:
		return "a user id is at most " + strconv.Itoa(maxUserID) + " bytes; this one has " + strconv.Itoa(len(id))
	case !utf8.ValidString(id):
		return "a user id is UTF-8 text"
	}
	return ""
}

// userSession is one of a user's sessions, on the user page.
type userSession struct {
	Handle    string    `json:"handle"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Expires   time.Time `json:"expires"`
	UserAgent string    `json:"user_agent,omitempty"`
	IP        string    `json:"ip,omitempty"`
}

// userData is the user page, and its JSON.
type userData struct {
	User     string        `json:"user"`
	Sessions []userSession `json:"sessions"`

	Searched bool   `json:"-"`
	Notice   string `json:"-"`
}

func (c *Console) user(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" && !wantsJSON(r) {
		c.render(w, r, http.StatusOK, "user", "Users", userData{})
		return
	}
	if msg := checkUser(id); msg != "" {
		c.fail(w, r, http.StatusBadRequest, msg)
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	list, err := c.m.UserSessions(ctx, id)
	if c.userError(w, r, "listing the user's sessions", err) {
		return
	}
	d := userData{User: id, Sessions: make([]userSession, len(list)), Searched: true, Notice: notice(r)}
	for i, s := range list {
		d.Sessions[i] = userSession{s.Handle, s.CreatedAt, s.LastSeen, s.Expires, s.UserAgent, s.IP}
	}
	c.render(w, r, http.StatusOK, "user", "User "+id, d)
}

// userError answers a failed user call and reports true, or reports
// false for a nil err.
func (c *Console) userError(w http.ResponseWriter, r *http.Request, what string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, session.ErrInvalidUserID):
		c.fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, errors.ErrUnsupported):
		c.fail(w, r, http.StatusNotImplemented, "this store cannot find a user's sessions (it is not a session.UserIndex)")
	default:
		c.storeFailed(w, r, what, err)
	}
	return true
}

// actionResult is the JSON answer to an action.
type actionResult struct {
	Ended int `json:"ended"`
}

// form parses an action's form, bounded; it answers and reports false
// when the body is too large or malformed.
func (c *Console) form(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.fail(w, r, http.StatusRequestEntityTooLarge, "the form is larger than "+strconv.Itoa(maxForm)+" bytes")
		} else {
			c.fail(w, r, http.StatusBadRequest, "the form does not parse")
		}
		return false
	}
	return true
}

// endUserSessions ends one of a user's sessions (form: user, handle) or
// all of them (form: user, all=1).
func (c *Console) endUserSessions(w http.ResponseWriter, r *http.Request) {
	if !c.form(w, r) {
		return
	}
	user, h := r.PostForm.Get("user"), r.PostForm.Get("handle")
	if msg := checkUser(user); msg != "" {
		c.fail(w, r, http.StatusBadRequest, msg)
		return
	}
	if h == "" && r.PostForm.Get("all") != "1" {
		c.fail(w, r, http.StatusBadRequest, "name a session (handle) or ask for all of them (all=1)")
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	var n int
	var err error
	if h != "" {
		n, err = c.m.RevokeSession(ctx, user, h)
	} else {
		n, err = c.m.RevokeUser(ctx, user)
	}
	if c.userError(w, r, "ending the user's sessions", err) {
		return
	}
	c.opts.Logger.Info("session console: ended sessions of a user", "user", user, "handle", h, "all", h == "", "ended", n, "remote", r.RemoteAddr)
	c.done(w, r, "user?"+url.Values{"id": {user}, "ended": {strconv.Itoa(n)}}.Encode(), actionResult{n})
}

// done answers a successful action: JSON, or a redirect to next (a
// relative URL) for a browser.
func (c *Console) done(w http.ResponseWriter, r *http.Request, next string, v any) {
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, v)
		return
	}
	w.Header().Set("Location", next)
	w.WriteHeader(http.StatusSeeOther)
}

// key is one of a session's keys.
type key struct {
	Name string `json:"name"`
	// Size is the length of the value's JSON encoding, in bytes.
	Size int `json:"size"`
	// Value is the value itself, only with Options.ShowValues.
	Value any `json:"value,omitempty"`
}

// sessionData is the session page, and its JSON.
type sessionData struct {
	// StoreID is omitted in the express-session mode, where it is the
	// session's token.
	StoreID   string    `json:"store_id,omitempty"`
	Handle    string    `json:"handle"`
	User      string    `json:"user,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Expires   time.Time `json:"expires"`
	UserAgent string    `json:"user_agent,omitempty"`
	IP        string    `json:"ip,omitempty"`
	Transient bool      `json:"transient"`
	// Size is the stored record's size, in bytes.
	Size int   `json:"size"`
	Keys []key `json:"keys"`
	// ValuesShown is Options.ShowValues.
	ValuesShown bool `json:"values_shown"`
	// DecodeError says why the record does not decode with the manager's
	// codec ("" when it does).
	DecodeError string `json:"decode_error,omitempty"`

	// LookupUser and LookupHandle name the session for the form that
	// ends it, where the store id is not shown.
	LookupUser   string `json:"-"`
	LookupHandle string `json:"-"`
}

// findSession resolves the session a request names, by store id (id) or
// by user and handle, and reads it. It answers and reports false when it
// cannot.
func (c *Console) findSession(w http.ResponseWriter, r *http.Request, q url.Values) (string, session.Record, bool) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	id := q.Get("id")
	if user, h := q.Get("user"), q.Get("handle"); id == "" && user != "" && h != "" {
		if msg := checkUser(user); msg != "" {
			c.fail(w, r, http.StatusBadRequest, msg)
			return "", session.Record{}, false
		}
		ui, ok := c.store.(session.UserIndex)
		if !ok {
			c.userError(w, r, "", errors.ErrUnsupported)
			return "", session.Record{}, false
		}
		recs, err := ui.ListUser(ctx, user)
		if err != nil {
			c.storeFailed(w, r, "listing the user's sessions", err)
			return "", session.Record{}, false
		}
		i := slices.IndexFunc(recs, func(rec session.UserRecord) bool { return ops.Handle(rec.ID) == h })
		if i < 0 {
			c.fail(w, r, http.StatusNotFound, "this user has no live session with this handle (ended, or expired)")
			return "", session.Record{}, false
		}
		return recs[i].ID, recs[i].Record, true
	}
	switch {
	case ops.IDsAreSecret(c.m):
		c.fail(w, r, http.StatusBadRequest, "in the express-session mode a store id is the session's token: the console neither shows nor looks one up")
		return "", session.Record{}, false
	case id == "":
		c.fail(w, r, http.StatusBadRequest, "name a session: id (its store id), or user and handle")
		return "", session.Record{}, false
	case len(id) > maxStoreID || !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl):
		c.fail(w, r, http.StatusBadRequest, "a store id is text of at most "+strconv.Itoa(maxStoreID)+" bytes (the built-in ones are 64 hex digits)")
		return "", session.Record{}, false
	}
	rec, err := c.store.Get(ctx, id)
	if errors.Is(err, session.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, "no live session has this store id (ended, expired, or never stored)")
		return "", session.Record{}, false
	}
	if err != nil {
		c.storeFailed(w, r, "reading the session", err)
		return "", session.Record{}, false
	}
	return id, rec, true
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, rec, ok := c.findSession(w, r, q)
	if !ok {
		return
	}
	d := sessionData{Handle: ops.Handle(id), Expires: rec.Expires, Size: len(rec.Data), Keys: []key{}, ValuesShown: c.opts.ShowValues}
	if !ops.IDsAreSecret(c.m) {
		d.StoreID = id
	}
	d.LookupUser, d.LookupHandle = q.Get("user"), q.Get("handle")
	p, err := ops.DecodeWith(c.m, rec.Data)
	if err != nil {
		d.DecodeError = err.Error()
	} else {
		d.User, d.CreatedAt, d.LastSeen, d.UserAgent, d.IP, d.Transient = p.UserID, p.Created, p.LastSeen, p.UserAgent, p.IP, p.Transient
		for k, v := range p.Values {
			b, _ := json.Marshal(v)
			kv := key{Name: k, Size: len(b)}
			if c.opts.ShowValues {
				kv.Value = v
			}
			d.Keys = append(d.Keys, kv)
		}
		slices.SortFunc(d.Keys, func(a, b key) int { return strings.Compare(a.Name, b.Name) })
	}
	c.render(w, r, http.StatusOK, "session", "Session", d)
}

// endSession ends the session the form names (id, or user and handle):
// through the Manager's RevokeSession when it is bound to a user (so a
// request in flight on it cannot write it back), else by destroying its
// record.
func (c *Console) endSession(w http.ResponseWriter, r *http.Request) {
	if !c.form(w, r) {
		return
	}
	id, rec, ok := c.findSession(w, r, r.PostForm)
	if !ok {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	user := ""
	if p, err := ops.DecodeWith(c.m, rec.Data); err == nil {
		user = p.UserID
	}
	n := 1
	var err error
	if user != "" {
		n, err = c.m.RevokeSession(ctx, user, ops.Handle(id))
	} else {
		err = c.store.Destroy(ctx, id)
	}
	if err != nil {
		c.storeFailed(w, r, "ending the session", err)
		return
	}
	c.opts.Logger.Info("session console: ended a session", "user", user, "handle", ops.Handle(id), "ended", n, "remote", r.RemoteAddr)
	next := "./?" + url.Values{"ended": {strconv.Itoa(n)}}.Encode()
	if user != "" {
		next = "user?" + url.Values{"id": {user}, "ended": {strconv.Itoa(n)}}.Encode()
	}
	c.done(w, r, next, actionResult{n})
}

// endAllData is the page that ends every session.
type endAllData struct {
	Phrase       string `json:"phrase"`
	LiveSessions *int64 `json:"live_sessions,omitempty"`
	Error        string `json:"error,omitempty"`
}

func (c *Console) endAllData(ctx context.Context) endAllData {
	d := endAllData{Phrase: endAllPhrase}
	if cn, ok := c.store.(session.Counter); ok {
		if n, err := cn.Count(ctx); err == nil {
			d.LiveSessions = &n
		}
	}
	return d
}

func (c *Console) endAllForm(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	c.render(w, r, http.StatusOK, "endall", "End every session", c.endAllData(ctx))
}

// endAll ends every session with Manager.RevokeAll, when the form's
// confirm field is the phrase.
func (c *Console) endAll(w http.ResponseWriter, r *http.Request) {
	if !c.form(w, r) {
		return
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	if strings.TrimSpace(r.PostForm.Get("confirm")) != endAllPhrase {
		d := c.endAllData(ctx)
		d.Error = "type \u201c" + endAllPhrase + "\u201d exactly to confirm; nothing was done"
		c.render(w, r, http.StatusBadRequest, "endall", "End every session", d)
		return
	}
	if err := c.m.RevokeAll(ctx); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			c.fail(w, r, http.StatusNotImplemented, "this store or codec cannot end every session: "+err.Error())
			return
		}
		c.storeFailed(w, r, "ending every session", err)
		return
	}
	c.opts.Logger.Warn("session console: ended every session", "remote", r.RemoteAddr)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]string{"ended": "all"})
		return
	}
	c.done(w, r, "./?ended=all", nil)
}
