// Package runtime runs a compiled topology on Kafka: it joins the
// application's consumer group with the task assignor (internal/assign),
// creates a task core (internal/task) for each assigned task, restores its
// stores from their changelogs (store.Restore), feeds it records merged in
// timestamp order from its partitions, fires punctuators, and commits.
//
// Commit protocol (at-least-once), per worker, every commit interval or
// when a processor requests it:
//
//  1. flush the producer: every sink and changelog record sent so far is
//     acknowledged (a failed send goes to the production handler);
//  2. flush the stores (task.Commit);
//  3. commit the consumed offsets to the group;
//  4. write each task's checkpoint (changelog offsets its data reflects).
//
// A fatal error stops the whole runtime without committing anything
// consumed after the last commit, so a restart resumes at or before the
// record that failed.
//
// Goroutines: Run owns the consumer-group loop and the producer's result
// reader; each group session owns its worker goroutines and waits for them
// in Cleanup. Run returns only after all of them have exited.
package runtime
