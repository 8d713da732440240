// Package internal groups the engine parts users never see: the task core,
// the record queue, the commit loop, the assignor, the partitioner and the
// SCRAM client, each in its own sub-package. Nothing here may appear in a
// public signature.
package internal
