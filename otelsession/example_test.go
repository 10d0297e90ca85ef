package otelsession_test

import (
	"context"

	"github.com/sessionkit/session"
	"github.com/sessionkit/session/otelsession"
)

// The README's snippet, compiled here (internal/readme checks that it is).
func setUp(ctx context.Context, cfg session.Config, opts session.Options) error {
	tel, err := otelsession.New(otelsession.Options{}) // OpenTelemetry's global providers
	if err != nil {
		return err
	}
	backend, err := session.Open(ctx, cfg, session.OpenOptions{Observe: tel.Observe})
	if err != nil {
		return err
	}
	sessions, err := session.New(backend.Store, opts)
	if err != nil {
		return err
	}
	if err := tel.Watch(sessions); err != nil {
		return err
	}
	return nil
}

var _ = setUp
