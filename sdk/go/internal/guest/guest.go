// Package guest holds the hook implementations a plugin registered and
// calls them for the WebAssembly glue: a Go panic becomes an error result
// (the host applies the hook's fallback and the instance stays usable), a
// nil decision becomes an error, and the SDK's GC control runs after every
// call.
package guest

import (
	"errors"
	"fmt"
	"runtime/debug"

	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/internal/gc"
)

var (
	handler    any
	router     strowger.Router
	authorizer strowger.Authorizer
	portab     strowger.Portability
	rewriter   strowger.Rewriter
)

// Set registers h (a Router, Authorizer, Portability or Rewriter, optionally
// an Initializer). Registering twice is a programming error.
func Set(h any) {
	if h == nil {
		panic("strowger: Register(nil)")
	}
	if handler != nil {
		panic("strowger: a handler is already registered")
	}
	handler = h
	router, _ = h.(strowger.Router)
	authorizer, _ = h.(strowger.Authorizer)
	portab, _ = h.(strowger.Portability)
	rewriter, _ = h.(strowger.Rewriter)
}

// Handler returns the registered handler (nil if none).
func Handler() any { return handler }

func recovered(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("plugin panicked: %v\n%s", r, debug.Stack())
	}
}

// Init runs the handler's Init, if it has one.
func Init(config string) (err error) {
	defer gc.Collect()
	defer recovered(&err)
	if handler == nil {
		return errors.New("strowger: the plugin registered no handler (call route.Register etc. in init)")
	}
	if i, ok := handler.(strowger.Initializer); ok {
		return i.Init(config)
	}
	return nil
}

// Route calls the registered Router.
func Route(call *strowger.Call) (d strowger.RouteDecision, err error) {
	defer recovered(&err)
	if router == nil {
		return nil, errors.New("strowger: no Router registered")
	}
	d, err = router.Route(call)
	if err == nil && d == nil {
		err = errors.New("strowger: Route returned a nil decision")
	}
	return d, err
}

// Authorize calls the registered Authorizer.
func Authorize(req *strowger.AuthRequest) (d strowger.AuthDecision, err error) {
	defer recovered(&err)
	if authorizer == nil {
		return nil, errors.New("strowger: no Authorizer registered")
	}
	d, err = authorizer.Authorize(req)
	if err == nil && d == nil {
		err = errors.New("strowger: Authorize returned a nil decision")
	}
	return d, err
}

// Lookup calls the registered Portability.
func Lookup(q *strowger.PortabilityQuery) (r *strowger.PortabilityResult, err error) {
	defer recovered(&err)
	if portab == nil {
		return nil, errors.New("strowger: no Portability registered")
	}
	return portab.Lookup(q)
}

// Rewrite calls the registered Rewriter.
func Rewrite(req *strowger.RewriteRequest) (n strowger.Numbers, err error) {
	defer recovered(&err)
	if rewriter == nil {
		return req.Numbers, errors.New("strowger: no Rewriter registered")
	}
	return rewriter.Rewrite(req)
}

// AfterCall runs the SDK's GC control (see package gc).
func AfterCall() { gc.AfterCall() }
