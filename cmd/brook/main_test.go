package main

import (
	"testing"

	"github.com/brookstream/brook/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }
