package assign_test

import (
	"fmt"
	"slices"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
)

// Two instances of an application whose sub-topology 0 joins the
// co-partitioned topics orders and payments. The leader's plan gives each
// member whole tasks: the same partitions of both topics.
func ExampleStrategy_Plan() {
	groups := []assign.TaskGroup{{ID: 0, Topics: []string{"orders", "payments"}}}
	a, _ := assign.NewStrategy(assign.Config{Groups: groups, Endpoint: "a.svc:8080"})
	b, _ := assign.NewStrategy(assign.Config{Groups: groups, Endpoint: "b.svc:8080"})

	// What sarama sends in JoinGroup for each member.
	udA, _ := a.SubscriptionUserData(a.Topics())
	udB, _ := b.SubscriptionUserData(b.Topics())
	members := map[string]sarama.ConsumerGroupMemberMetadata{
		"member-a": {Topics: a.Topics(), UserData: udA},
		"member-b": {Topics: b.Topics(), UserData: udB},
	}
	partitions := []int32{0, 1, 2, 3}
	topics := map[string][]int32{"orders": partitions, "payments": partitions}

	// a happens to lead this generation.
	plan, err := a.Plan(members, topics)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range []string{"member-a", "member-b"} {
		fmt.Println(m, "orders", plan[m]["orders"], "payments", plan[m]["payments"])
	}

	// What b receives in SyncGroup: its partitions, and user data with
	// the generation and partition counts (nothing about a).
	data, _ := a.AssignmentData("member-b", plan["member-b"], 1)
	b.OnAssignment(&sarama.ConsumerGroupMemberAssignment{Topics: plan["member-b"], UserData: data}, 1)
	own, _ := b.Local()
	fmt.Println("b runs", own.Tasks, "of", own.Partitions[0], "tasks in generation", own.Generation)
	tasks, _ := b.Tasks(plan["member-b"])
	fmt.Println("b's claims are tasks", tasks, slices.Equal(tasks, own.Tasks))
	// Output:
	// member-a orders [0 2] payments [0 2]
	// member-b orders [1 3] payments [1 3]
	// b runs [0_1 0_3] of 4 tasks in generation 1
	// b's claims are tasks [0_1 0_3] true
}
