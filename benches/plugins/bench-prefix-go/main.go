// Command bench-prefix-go is the Go twin of the benchmark's routing policy
// (benches/README.md): a route plugin that replaces a called-number prefix
// and forwards to one trunk, the same work Kamailio does in
// benches/kamailio/proxy-native.cfg. Config (JSON):
//
//	{"from": "90", "to": "91", "trunk": "bench-uas"}
//
// Numbers without the prefix are refused with 404.
package main

import (
	"errors"
	"strings"

	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/route"
)

// Config is the plugin configuration.
type Config struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Trunk string `json:"trunk"`
}

type router struct{ cfg Config }

// Init validates the configuration; an error refuses the plugin version.
func (r *router) Init(config string) error {
	var c Config
	if err := strowger.DecodeConfig(config, &c); err != nil {
		return err
	}
	if c.From == "" || c.Trunk == "" {
		return errors.New(`"from" and "trunk" are required`)
	}
	r.cfg = c
	return nil
}

// Route rewrites the prefix and forwards to the trunk.
func (r *router) Route(call *strowger.Call) (strowger.RouteDecision, error) {
	rest, ok := strings.CutPrefix(call.BNumber, r.cfg.From)
	if !ok {
		return strowger.Reject{Code: 404, Reason: "No route"}, nil
	}
	a := strowger.Try(strowger.ToTrunk(r.cfg.Trunk))
	a.BNumber = strowger.Ptr(r.cfg.To + rest)
	return strowger.Forward{Attempts: []strowger.Attempt{a}}, nil
}

func init() { route.Register(&router{}) }

func main() {}
