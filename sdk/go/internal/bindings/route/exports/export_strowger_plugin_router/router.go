// Package export_strowger_plugin_router implements the router export of the
// route world: it converts the call to strowger.Call, asks the registered
// Router, and converts its decision back (hand-written, not generated).
package export_strowger_plugin_router

import (
	"errors"
	"fmt"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	strowger "strowger.dev/sdk/go"
	rt "strowger.dev/sdk/go/internal/bindings/route/imports/strowger_plugin_routing_types"
	"strowger.dev/sdk/go/internal/bindings/shared/glue"
	"strowger.dev/sdk/go/internal/guest"
)

// Route decides where call goes.
func Route(call rt.Call) witTypes.Result[rt.RouteDecision, string] {
	defer guest.AfterCall()
	c := strowger.Call{
		CallID:      call.CallId,
		Ingress:     glue.Ingress(call.Ingress),
		Source:      glue.Endpoint(call.Source),
		RequestURI:  call.RequestUri,
		ANumber:     call.ANumber,
		BNumber:     call.BNumber,
		DisplayName: glue.Opt(call.DisplayName),
		From:        glue.Party(call.From),
		To:          glue.Party(call.To),
		Diversion:   glue.Parties(call.Diversion),
		Headers:     glue.Headers(call.Headers),
		Codecs:      call.Codecs,
		Time:        glue.DateTime(call.Time),
	}
	if call.Pai.IsSome() {
		p := glue.Party(call.Pai.Some())
		c.PAI = &p
	}
	if call.Portability.IsSome() {
		p := glue.PortabilityResult(call.Portability.Some())
		c.Portability = &p
	}
	d, err := guest.Route(&c)
	if err == nil {
		var out rt.RouteDecision
		if out, err = decision(d); err == nil {
			return witTypes.Ok[rt.RouteDecision, string](out)
		}
	}
	return witTypes.Err[rt.RouteDecision, string](err.Error())
}

func decision(d strowger.RouteDecision) (rt.RouteDecision, error) {
	switch d := d.(type) {
	case strowger.Forward:
		return forward(&d)
	case *strowger.Forward:
		return forward(d)
	case strowger.Reject:
		return rt.MakeRouteDecisionReject(glue.ToReject(d)), nil
	case *strowger.Reject:
		return rt.MakeRouteDecisionReject(glue.ToReject(*d)), nil
	case strowger.Redirect:
		return rt.MakeRouteDecisionRedirect([]string(d)), nil
	}
	return rt.RouteDecision{}, fmt.Errorf("strowger: unsupported route decision %T", d)
}

func forward(f *strowger.Forward) (rt.RouteDecision, error) {
	if f == nil {
		return rt.RouteDecision{}, errors.New("strowger: nil *Forward")
	}
	attempts := make([]rt.Attempt, len(f.Attempts))
	for i := range f.Attempts {
		a, err := attempt(&f.Attempts[i])
		if err != nil {
			return rt.RouteDecision{}, err
		}
		attempts[i] = a
	}
	retry := make([]rt.Cause, len(f.RetryOn))
	for i, c := range f.RetryOn {
		switch c.Kind {
		case strowger.CauseStatus:
			retry[i] = rt.MakeCauseStatus(c.Code)
		case strowger.CauseStatusClass:
			retry[i] = rt.MakeCauseStatusClass(uint8(c.Code))
		case strowger.CauseNoAnswer:
			retry[i] = rt.MakeCauseNoAnswer()
		case strowger.CauseUnavailable:
			retry[i] = rt.MakeCauseUnavailable()
		case strowger.CauseLimitReached:
			retry[i] = rt.MakeCauseLimitReached()
		default:
			return rt.RouteDecision{}, fmt.Errorf("strowger: unknown cause kind %d", c.Kind)
		}
	}
	pc := rt.PreferredCause_First
	if f.PreferredCause == strowger.LastCause {
		pc = rt.PreferredCause_Last
	}
	return rt.MakeRouteDecisionForward(rt.Forward{Attempts: attempts, RetryOn: retry, PreferredCause: pc}), nil
}

func attempt(a *strowger.Attempt) (rt.Attempt, error) {
	var dest rt.Destination
	switch a.Destination.Kind {
	case strowger.DestUser:
		dest = rt.MakeDestinationUser(a.Destination.Target)
	case strowger.DestTrunk:
		dest = rt.MakeDestinationTrunk(a.Destination.Target)
	case strowger.DestTrunkGroup:
		dest = rt.MakeDestinationTrunkGroup(a.Destination.Target)
	case strowger.DestURI:
		dest = rt.MakeDestinationUri(a.Destination.Target)
	default:
		return rt.Attempt{}, fmt.Errorf("strowger: unknown destination kind %d", a.Destination.Kind)
	}
	out := rt.Attempt{
		Destination:   dest,
		ANumber:       glue.ToOpt(a.ANumber),
		BNumber:       glue.ToOpt(a.BNumber),
		DisplayName:   glue.ToOpt(a.DisplayName),
		AddHeaders:    glue.ToHeaders(a.AddHeaders),
		RemoveHeaders: a.RemoveHeaders,
		RingTimeoutMs: glue.ToOpt(a.RingTimeoutMs),
		Media:         witTypes.None[rt.MediaMode](),
		Codecs:        witTypes.None[[]string](),
	}
	if a.Media != nil {
		m := rt.MediaMode_Relay
		if *a.Media == strowger.MediaBypass {
			m = rt.MediaMode_Bypass
		}
		out.Media = witTypes.Some(m)
	}
	if a.Codecs != nil {
		out.Codecs = witTypes.Some(a.Codecs)
	}
	return out, nil
}
