package session

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"time"
)

// GobCodec stores a session with encoding/gob, so values keep their Go
// types across a round trip (a time.Time stays a time.Time, an int stays
// an int). Types stored behind an interface must be registered with
// [gob.Register], and the stored bytes are not readable by an operator.
type GobCodec struct{}

func init() {
	// Types a session commonly holds behind the values map's interface.
	gob.Register(time.Time{})
	gob.Register([]any{})
	gob.Register(map[string]any{})
	gob.Register([]string{})
}

type gobPayload struct {
	Created   int64
	Transient bool
	Values    map[string]any
	User      string
	Seen      int64
	UA        string
	IP        string
	Epoch     int64
}

// Encode implements [Codec].
func (GobCodec) Encode(p Payload) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(gobPayload{Created: p.CreatedAt.UnixMilli(), Transient: p.Transient, Values: p.Values,
		User: p.UserID, Seen: unixMilli(p.LastSeen), UA: p.UserAgent, IP: p.IP, Epoch: p.Epoch}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncode, err)
	}
	return buf.Bytes(), nil
}

// Decode implements [Codec].
func (GobCodec) Decode(data []byte) (p Payload, err error) {
	defer func() {
		// encoding/gob documents that it may panic on corrupt input in
		// rare cases; a bad record must never take the process down.
		if r := recover(); r != nil {
			p, err = Payload{}, fmt.Errorf("%w: %v", ErrBadPayload, r)
		}
	}()
	var gp gobPayload
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&gp); err != nil {
		return Payload{}, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if gp.Created <= 0 {
		return Payload{}, fmt.Errorf("%w: no creation time", ErrBadPayload)
	}
	if gp.Values == nil {
		gp.Values = map[string]any{}
	}
	return Payload{Values: gp.Values, CreatedAt: time.UnixMilli(gp.Created), Transient: gp.Transient,
		UserID: gp.User, LastSeen: fromUnixMilli(gp.Seen), UserAgent: gp.UA, IP: gp.IP, Epoch: gp.Epoch}, nil
}
