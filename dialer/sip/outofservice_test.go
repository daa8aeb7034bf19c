package sip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/turbina-dialer/turbina/internal/sipptest"
)

func TestTrunkTakenOutOfServiceAndBack(t *testing.T) {
	t.Parallel()
	carrier := sipptest.Start(t, "options.xml", sipptest.Options{Calls: 1})
	o := newTestOriginator(t, testConfig(udpTrunk("carrier", carrier.Addr, 0)))
	if err := o.SetTrunkOutOfService("nope", true); !errors.Is(err, ErrUnknownTrunk) {
		t.Fatalf("unknown trunk: %v", err)
	}
	if err := o.SetTrunkOutOfService("carrier", true); err != nil {
		t.Fatal(err)
	}
	if st := o.Trunks()[0]; st.State != CircuitOpen || !st.OutOfService {
		t.Fatalf("after taking it out: %+v", st)
	}
	// Out of service is not probed back in: no trunk while the supervisor says so.
	time.Sleep(500 * time.Millisecond)
	if _, err := o.Dial(context.Background(), DialRequest{To: "+34600000009"}); !errors.Is(err, ErrNoTrunk) {
		t.Fatalf("dial with the only trunk out of service: %v", err)
	}
	if err := o.SetTrunkOutOfService("carrier", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.Trunks()[0].State != CircuitClosed {
		if time.Now().After(deadline) {
			t.Fatalf("trunk not back in service after its probe: %+v", o.Trunks()[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if o.Trunks()[0].OutOfService {
		t.Error("still marked out of service")
	}
	carrier.Wait(t, 10*time.Second)
}
