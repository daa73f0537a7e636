// Command go-portability is a Strowger portability plugin: exact-then-prefix
// data set lookup of the called number (see Config).
package main

import (
	strowger "strowger.dev/sdk/go"
	"strowger.dev/sdk/go/portability"
)

type plugin struct{ *lookup }

// Init validates the configuration; an error refuses the plugin version.
func (p *plugin) Init(config string) error {
	var c Config
	if err := strowger.DecodeConfig(config, &c); err != nil {
		return err
	}
	l, err := newLookup(c)
	if err != nil {
		return err
	}
	p.lookup = l
	return nil
}

func init() { portability.Register(&plugin{}) }

func main() {}
