// Package portability makes a Go program a Strowger `portability` plugin:
// import it and call Register in an init function. Built for wasip1 it
// links the component's exports (lifecycle.init, portability-lookup.lookup);
// natively (go test) it only records the handler.
package portability

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/internal/guest"
)

// Register installs the plugin's Portability lookup (which may also
// implement strowger.Initializer). Call it once, from init.
func Register(p strowger.Portability) { guest.Set(p) }
