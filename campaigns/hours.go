package campaigns

import "time"

// Closure says why a campaign's calling hours are closed at an instant.
type Closure string

// Closures. The strings are the policy gate's reason codes.
const (
	// Open: inside the calling hours in every zone the person may be in.
	Open Closure = ""
	// ClosedOutsideWindow: outside the day's window in at least one zone.
	ClosedOutsideWindow Closure = "outside_window"
	// ClosedHoliday: a holiday in at least one zone.
	ClosedHoliday Closure = "holiday"
)

// ContactZones returns every time zone the contact may be in: its own time zone
// when it has one, else the campaign's schedule zone. A contact whose zone is
// ambiguous gets several; the calling hours must hold in each.
func (c *Campaign) ContactZones(ct Contact) []*time.Location {
	for _, name := range []string{ct.Timezone, c.Schedule.Timezone} {
		if name == "" {
			continue
		}
		if loc, err := time.LoadLocation(name); err == nil {
			return []*time.Location{loc}
		}
	}
	return []*time.Location{time.UTC}
}

// Hours says whether t is inside the campaign's calling hours in every one of
// zones and, when it is not, why and the first instant after t when it is.
func (c *Campaign) Hours(t time.Time, zones []*time.Location) (Closure, time.Time) {
	for _, loc := range zones {
		if !c.Window.Contains(t, loc) {
			return ClosedOutsideWindow, nextWindowOpen(c.Window, t, loc)
		}
	}
	return Open, time.Time{}
}

// nextWindowOpen is the next moment the window opens in loc after t.
func nextWindowOpen(w Window, t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	open := time.Date(local.Year(), local.Month(), local.Day(), int(w.Start)/60, int(w.Start)%60, 0, 0, loc)
	for !open.After(local) {
		open = open.AddDate(0, 0, 1)
	}
	return open
}
