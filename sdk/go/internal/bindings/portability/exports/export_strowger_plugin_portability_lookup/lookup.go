// Package export_strowger_plugin_portability_lookup implements the
// portability-lookup export of the portability world (hand-written, not
// generated).
package export_strowger_plugin_portability_lookup

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	strowger "strowger.dev/sdk/go"
	pt "strowger.dev/sdk/go/internal/bindings/portability/imports/strowger_plugin_portability_types"
	"strowger.dev/sdk/go/internal/bindings/shared/glue"
	types "strowger.dev/sdk/go/internal/bindings/shared/imports/strowger_plugin_types"
	"strowger.dev/sdk/go/internal/guest"
)

// Lookup looks query up.
func Lookup(query pt.PortabilityQuery) witTypes.Result[witTypes.Option[types.PortabilityResult], string] {
	defer guest.AfterCall()
	q := strowger.PortabilityQuery{
		Number:  query.Number,
		ANumber: query.ANumber,
		Ingress: glue.Ingress(query.Ingress),
		Time:    glue.DateTime(query.Time),
	}
	r, err := guest.Lookup(&q)
	if err != nil {
		return witTypes.Err[witTypes.Option[types.PortabilityResult], string](err.Error())
	}
	if r == nil {
		return witTypes.Ok[witTypes.Option[types.PortabilityResult], string](witTypes.None[types.PortabilityResult]())
	}
	return witTypes.Ok[witTypes.Option[types.PortabilityResult], string](witTypes.Some(glue.ToPortabilityResult(*r)))
}
