// Command tod-router is a Strowger route plugin: time-of-day routing with
// overflow to a second trunk (see Config).
package main

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/route"
)

type router struct{ plan *plan }

// Init validates the configuration; an error refuses the plugin version.
func (r *router) Init(config string) error {
	var c Config
	if err := strowger.DecodeConfig(config, &c); err != nil {
		return err
	}
	p, err := newPlan(c)
	if err != nil {
		return err
	}
	r.plan = p
	return nil
}

// Route decides by the call's arrival time.
func (r *router) Route(call *strowger.Call) (strowger.RouteDecision, error) {
	d := r.plan.route(call)
	if f, ok := d.(strowger.Forward); ok && len(f.Attempts) == 1 {
		strowger.CounterAdd("outside_window", 1)
	} else {
		strowger.CounterAdd("inside_window", 1)
	}
	return d, nil
}

func init() { route.Register(&router{}) }

func main() {}
