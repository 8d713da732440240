package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// transient reports an answer that means "not now" rather than "no": a
// group coordinator that is loading its offsets (as after a broker start
// or a coordinator move), moved, or not available yet; a partition
// leader that moved or is not elected yet. sarama's admin client retries
// only some of these.
func transient(err error) bool {
	return errors.Is(err, sarama.ErrOffsetsLoadInProgress) ||
		errors.Is(err, sarama.ErrNotCoordinatorForConsumer) ||
		errors.Is(err, sarama.ErrConsumerCoordinatorNotAvailable) ||
		errors.Is(err, sarama.ErrNotLeaderForPartition) ||
		errors.Is(err, sarama.ErrLeaderNotAvailable) ||
		errors.Is(err, sarama.ErrRequestTimedOut)
}

// retryBackoff is the pause between attempts.
const retryBackoff = 200 * time.Millisecond

// retry calls fn until it returns nil or an error that is not transient,
// or until the reset's --timeout has passed since the first attempt
// (then the last error is returned, saying for how long it lasted). After
// a transient error it refreshes the group's coordinator and the
// metadata, which the next attempt uses.
func (r *resetter) retry(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(r.o.timeout)
	for {
		err := fn()
		if err == nil || !transient(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (still answered after retrying for %v)", err, r.o.timeout)
		}
		_ = r.client.RefreshCoordinator(r.o.appID)
		_ = r.client.RefreshMetadata()
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (interrupted while retrying: %w)", err, ctx.Err())
		case <-time.After(retryBackoff):
		}
	}
}
