// Package route makes a Go program a Strowger `route` plugin: import it and
// call Register in an init function. Built for wasip1 it links the
// component's exports (lifecycle.init, router.route); natively (go test) it
// only records the handler.
package route

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/internal/guest"
)

// Register installs the plugin's Router (which may also implement
// strowger.Initializer). Call it once, from init.
func Register(r strowger.Router) { guest.Set(r) }
