package guest

import (
	"errors"
	"strings"
	"testing"

	strowger "strowger.dev/sdk/go"
)

type panicky struct{ initErr error }

func (p panicky) Init(string) error { return p.initErr }
func (panicky) Route(c *strowger.Call) (strowger.RouteDecision, error) {
	switch c.BNumber {
	case "panic":
		panic("boom")
	case "nil":
		return nil, nil
	case "err":
		return nil, errors.New("no route for you")
	}
	return strowger.RejectWith(404, ""), nil
}

func reset() { handler, router, authorizer, portab, rewriter = nil, nil, nil, nil, nil }

func TestGuestWrapsHandler(t *testing.T) {
	reset()
	defer reset()
	if err := Init("{}"); err == nil {
		t.Fatal("Init without a handler must fail")
	}
	Set(panicky{})
	if err := Init("{}"); err != nil {
		t.Fatal(err)
	}
	d, err := Route(&strowger.Call{BNumber: "1"})
	if err != nil || d != (strowger.Reject{Code: 404, Reason: "Not Found"}) {
		t.Fatalf("%v %v", d, err)
	}
	if _, err := Route(&strowger.Call{BNumber: "panic"}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic not turned into an error: %v", err)
	}
	if _, err := Route(&strowger.Call{BNumber: "nil"}); err == nil {
		t.Fatal("nil decision accepted")
	}
	if _, err := Route(&strowger.Call{BNumber: "err"}); err == nil || err.Error() != "no route for you" {
		t.Fatal(err)
	}
	if _, err := Authorize(&strowger.AuthRequest{}); err == nil {
		t.Fatal("no authorizer registered, must fail")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("second Set must panic")
		}
	}()
	Set(panicky{})
}

func TestInitError(t *testing.T) {
	reset()
	defer reset()
	Set(panicky{initErr: errors.New("bad config")})
	if err := Init("{}"); err == nil || err.Error() != "bad config" {
		t.Fatal(err)
	}
}
