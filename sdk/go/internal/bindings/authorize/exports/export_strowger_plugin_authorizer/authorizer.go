// Package export_strowger_plugin_authorizer implements the authorizer
// export of the authorize world (hand-written, not generated).
package export_strowger_plugin_authorizer

import (
	"fmt"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	strowger "strowger.dev/sdk/go"
	at "strowger.dev/sdk/go/internal/bindings/authorize/imports/strowger_plugin_authorize_types"
	"strowger.dev/sdk/go/internal/bindings/shared/glue"
	"strowger.dev/sdk/go/internal/guest"
)

// Authorize decides on request.
func Authorize(request at.AuthRequest) witTypes.Result[at.AuthDecision, string] {
	defer guest.AfterCall()
	r := strowger.AuthRequest{
		Method:       request.Method,
		AOR:          request.Aor,
		User:         request.User,
		Domain:       request.Domain,
		AuthUser:     glue.Opt(request.AuthUser),
		Credentials:  strowger.Credentials(request.Credentials),
		KnownUser:    request.KnownUser,
		Source:       glue.Endpoint(request.Source),
		Ingress:      glue.Ingress(request.Ingress),
		UserAgent:    glue.Opt(request.UserAgent),
		Contacts:     request.Contacts,
		Expires:      glue.Opt(request.Expires),
		Registration: strowger.RegistrationState(request.Registration),
		ContactCount: request.ContactCount,
		Time:         glue.DateTime(request.Time),
	}
	d, err := guest.Authorize(&r)
	if err == nil {
		var out at.AuthDecision
		if out, err = decision(d); err == nil {
			return witTypes.Ok[at.AuthDecision, string](out)
		}
	}
	return witTypes.Err[at.AuthDecision, string](err.Error())
}

func decision(d strowger.AuthDecision) (at.AuthDecision, error) {
	switch d := d.(type) {
	case strowger.Accept:
		return accept(d), nil
	case *strowger.Accept:
		return accept(*d), nil
	case strowger.Challenge:
		return challenge(d), nil
	case *strowger.Challenge:
		return challenge(*d), nil
	case strowger.Reject:
		return at.MakeAuthDecisionReject(glue.ToReject(d)), nil
	case *strowger.Reject:
		return at.MakeAuthDecisionReject(glue.ToReject(*d)), nil
	case strowger.Drop, *strowger.Drop:
		return at.MakeAuthDecisionDrop(), nil
	}
	return at.AuthDecision{}, fmt.Errorf("strowger: unsupported auth decision %T", d)
}

func accept(a strowger.Accept) at.AuthDecision {
	return at.MakeAuthDecisionAccept(at.Accept{
		MaxExpires:  glue.ToOpt(a.MaxExpires),
		MinExpires:  glue.ToOpt(a.MinExpires),
		MaxContacts: glue.ToOpt(a.MaxContacts),
	})
}

func challenge(c strowger.Challenge) at.AuthDecision {
	algs := make([]at.DigestAlgorithm, len(c.Algorithms))
	for i, a := range c.Algorithms {
		algs[i] = at.DigestAlgorithm(a)
	}
	return at.MakeAuthDecisionChallenge(at.Challenge{Realm: glue.ToOpt(c.Realm), Algorithms: algs})
}
