package campaigns

import (
	"errors"
	"fmt"
)

// DefaultMaxAbandon is the engine's cap on every campaign's target_abandon
// unless configured: 3 %, the US Telemarketing Sales Rule's and Ofcom's rate.
const DefaultMaxAbandon = 0.03

// MaxAbandonCeiling is the highest max_abandon an engine may be configured with.
const MaxAbandonCeiling = 0.2

// Limits are the engine's bounds on what a campaign may ask for.
type Limits struct {
	// MaxAbandon caps Pacing.TargetAbandon; 0 means DefaultMaxAbandon.
	MaxAbandon float64
}

// ValidateMaxAbandon checks an engine's max_abandon setting; the error names
// field, the configuration key it came from.
func ValidateMaxAbandon(field string, v float64) error {
	if v <= 0 || v > MaxAbandonCeiling {
		return fmt.Errorf("%s: %g is out of range (0, %g]", field, v, MaxAbandonCeiling)
	}
	return nil
}

// Check validates c as Campaign.Validate does and refuses a target_abandon
// above the engine's cap, naming the field and the cap.
func (l Limits) Check(c *Campaign) error {
	err := c.Validate()
	limit := l.MaxAbandon
	if limit == 0 {
		limit = DefaultMaxAbandon
	}
	if c.Pacing.TargetAbandon <= limit {
		return err
	}
	msg := fmt.Sprintf("%g is above the engine's max_abandon %g", c.Pacing.TargetAbandon, limit)
	var ve *ValidationError
	if errors.As(err, &ve) {
		if _, set := ve.Fields["pacing.target_abandon"]; !set {
			ve.Fields["pacing.target_abandon"] = msg
		}
		return ve
	}
	if err != nil {
		return err
	}
	return &ValidationError{Fields: map[string]string{"pacing.target_abandon": msg}}
}
