// Package strowger is the Go SDK for Strowger plugins: WebAssembly
// components that make the switch's policy decisions (routing,
// registration/request authorization, number portability, number rewrite).
//
// A plugin is a Go main package built for wasip1 (see
// `strowger plugin build` or scripts/build-go-guest.sh). It implements one of
// the hook interfaces ([Router], [Authorizer], [Portability], [Rewriter]) and
// registers it, in an init function, with the package of its world:
//
//	package main
//
//	import (
//		strowger "strowger.dev/sdk/go"
//		"strowger.dev/sdk/go/route"
//	)
//
//	type router struct{}
//
//	func (router) Route(call *strowger.Call) (strowger.RouteDecision, error) {
//		return strowger.ForwardTo(strowger.Attempt{Destination: strowger.ToTrunk("carrier-a")}), nil
//	}
//
//	func init() { route.Register(router{}) }
//
//	func main() {}
//
// The handler may also implement [Initializer] to validate its JSON
// configuration when the host loads it (a bad configuration refuses the
// plugin version before it goes live).
//
// The switch owns all call state: a plugin instance may be reused for many
// decisions or discarded at any moment, so keep nothing between calls except
// what Init derived from the configuration.
//
// Host capabilities ([Log], [Config], [Now], [DatasetGet],
// [DatasetLongestPrefix], [LocationLookup], [TrunkStatus], [CounterAdd]) are
// package functions. Outside WebAssembly (in `go test`) they are served by a
// replaceable [Host]; package strowgertest has a configurable fake.
//
// Garbage collection is controlled by the SDK: the Go runtime's automatic GC
// is switched off and a collection runs inside the exported call every few
// calls (see [SetGCInterval]). This works around a Go/WASI interaction that
// otherwise kills a Go instance after a few thousand calls; plugin authors
// need not do anything about it.
package strowger
