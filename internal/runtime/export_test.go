package runtime

import (
	"context"

	"github.com/IBM/sarama"
)

// SetClaimHook makes every App of the test binary call f with each
// consumed record before it goes into its task's queue (f may block, to
// stand for a slow fetch) until reset is called.
func SetClaimHook(f func(ctx context.Context, m *sarama.ConsumerMessage)) (reset func()) {
	claimHook.Store(&f)
	return func() { claimHook.Store(nil) }
}

// RequestRejoin is requestRejoin, for the test of the pinned sarama
// version's session.
var RequestRejoin = requestRejoin
