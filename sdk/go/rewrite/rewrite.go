// Package rewrite makes a Go program a Strowger `rewrite` plugin: import it
// and call Register in an init function. Built for wasip1 it links the
// component's exports (lifecycle.init, rewriter.rewrite); natively (go test)
// it only records the handler.
package rewrite

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/internal/guest"
)

// Register installs the plugin's Rewriter (which may also implement
// strowger.Initializer). Call it once, from init.
func Register(r strowger.Rewriter) { guest.Set(r) }
