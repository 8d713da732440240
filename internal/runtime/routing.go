package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// describeGroup asks the group coordinator to describe the application's
// consumer group: every member's subscription and assignment, from which
// the assignor assembles the whole assignment that interactive queries
// route by (assign.Strategy.Routing). The coordinator includes them only
// while the group is stable.
func (r *Runtime) describeGroup(ctx context.Context) (*sarama.GroupDescription, error) {
	if r.client == nil {
		return nil, errors.New("brook: the group cannot be described before Run connects")
	}
	var desc *sarama.GroupDescription
	err := r.withCoordinator(ctx, "group description", func(coord *sarama.Broker) error {
		req := &sarama.DescribeGroupsRequest{Groups: []string{r.cfg.ApplicationID}}
		if r.cfg.Sarama.Version.IsAtLeast(sarama.V2_4_0_0) {
			req.Version = 5
		} else if r.cfg.Sarama.Version.IsAtLeast(sarama.V2_0_0_0) {
			req.Version = 2
		}
		resp, err := coord.DescribeGroups(req)
		if err != nil {
			return err
		}
		for _, g := range resp.Groups {
			if g == nil || g.GroupId != r.cfg.ApplicationID {
				continue
			}
			if g.Err != sarama.ErrNoError {
				return g.Err
			}
			desc = g
			return nil
		}
		return fmt.Errorf("the coordinator's answer does not describe the group: %w", sarama.ErrIncompleteResponse)
	})
	if err != nil {
		return nil, err
	}
	return desc, nil
}
