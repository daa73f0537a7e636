// Package authorize makes a Go program a Strowger `authorize` plugin: import
// it and call Register in an init function. Built for wasip1 it links the
// component's exports (lifecycle.init, authorizer.authorize); natively (go
// test) it only records the handler.
package authorize

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/internal/guest"
)

// Register installs the plugin's Authorizer (which may also implement
// strowger.Initializer). Call it once, from init.
func Register(a strowger.Authorizer) { guest.Set(a) }
