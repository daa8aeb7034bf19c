package sip

import (
	"context"
	"errors"
	"testing"

	"github.com/emiago/sipgo"
)

// TestWaitAnswerRecovers checks that a panic inside sipgo's WaitAnswer (v1.7.3 panics on
// a CANCEL whose transaction ends with neither a response nor an error, a race no test
// can call up on demand) ends the call with errCancelUnanswered instead of crashing the
// process. A session sipgo never set up panics the same way, on a nil dereference.
func TestWaitAnswerRecovers(t *testing.T) {
	err := waitAnswer(context.Background(), &sipgo.DialogClientSession{}, sipgo.AnswerOptions{})
	if !errors.Is(err, errCancelUnanswered) {
		t.Fatalf("waitAnswer = %v, want errCancelUnanswered", err)
	}
}
