// Package export_strowger_plugin_rewriter implements the rewriter export of
// the rewrite world (hand-written, not generated).
package export_strowger_plugin_rewriter

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	strowger "strowger.dev/sdk/go"
	rw "strowger.dev/sdk/go/internal/bindings/rewrite/imports/strowger_plugin_rewrite_types"
	"strowger.dev/sdk/go/internal/bindings/shared/glue"
	"strowger.dev/sdk/go/internal/guest"
)

// Rewrite returns the rewritten numbers.
func Rewrite(request rw.RewriteRequest) witTypes.Result[rw.Numbers, string] {
	defer guest.AfterCall()
	r := strowger.RewriteRequest{
		Direction: strowger.Direction(request.Direction),
		Trunk:     glue.Opt(request.Trunk),
		Ingress:   glue.Ingress(request.Ingress),
		Numbers: strowger.Numbers{
			ANumber:     request.Numbers.ANumber,
			BNumber:     request.Numbers.BNumber,
			DisplayName: glue.Opt(request.Numbers.DisplayName),
		},
		Time: glue.DateTime(request.Time),
	}
	n, err := guest.Rewrite(&r)
	if err != nil {
		return witTypes.Err[rw.Numbers, string](err.Error())
	}
	return witTypes.Ok[rw.Numbers, string](rw.Numbers{
		ANumber:     n.ANumber,
		BNumber:     n.BNumber,
		DisplayName: glue.ToOpt(n.DisplayName),
	})
}
