package campaigns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

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

// weekdayKeys are the JSON keys of WeeklyHours, indexed by time.Weekday.
var weekdayKeys = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// WeeklyHours are the calling hours of each weekday, indexed by time.Weekday; a
// nil day is closed. In JSON it is an object keyed "mon".."sun" whose absent or
// null days are closed: {"mon":{"start":"09:00","end":"21:00"},…}. A day's
// window must end after it starts: hours past midnight belong to the next day.
type WeeklyHours [7]*Window

// MarshalJSON writes the open days only.
func (w WeeklyHours) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for i := 1; i <= 7; i++ { // Monday first, as people read a week
		day := time.Weekday(i % 7)
		if w[day] == nil {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		win, err := json.Marshal(w[day])
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%q:%s", weekdayKeys[day], win)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the object form; an unknown day name is an error naming it.
func (w *WeeklyHours) UnmarshalJSON(data []byte) error {
	var m map[string]*Window
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	var out WeeklyHours
	for k, win := range m {
		i := slices.Index(weekdayKeys[:], strings.ToLower(k))
		if i < 0 {
			return fmt.Errorf("calling_hours: %q is not a day (want mon, tue, wed, thu, fri, sat or sun)", k)
		}
		out[i] = win
	}
	*w = out
	return nil
}

// EveryDay returns hours open in win on all seven days.
func EveryDay(win Window) *WeeklyHours {
	var w WeeklyHours
	for i := range w {
		d := win
		w[i] = &d
	}
	return &w
}

// validate adds a message per bad day to bad.
func (w *WeeklyHours) validate(bad map[string]string) {
	open := false
	for i, win := range w {
		if win == nil {
			continue
		}
		open = true
		key := "calling_hours." + weekdayKeys[i]
		switch {
		case !win.Start.valid() || !win.End.valid():
			bad[key] = "start and end must be times of day HH:MM"
		case win.End <= win.Start:
			bad[key] = fmt.Sprintf("end %s is not after start %s; hours past midnight go on the next day", win.End, win.Start)
		}
	}
	if !open {
		bad["calling_hours"] = "no day has hours: the campaign would never call"
	}
}

// day returns the window of a weekday and whether the day has one. Without
// weekly hours the campaign's calling_window holds every day.
func (c *Campaign) day(wd time.Weekday) (Window, bool) {
	if c.WeekHours == nil {
		return c.Window, true
	}
	if w := c.WeekHours[wd]; w != nil {
		return *w, true
	}
	return Window{}, false
}

// ContactZones returns every time zone the contact may be in: the zones found
// at import (Contact.Zones), else its own time zone, else what its state,
// postal-code column or number tells (for contacts read without their stored
// zones), else the campaign's default zones (see DefaultZones). A contact
// whose zone is ambiguous gets several; the calling hours must hold in each.
func (c *Campaign) ContactZones(ct Contact) []*time.Location {
	names := ct.Zones
	if len(names) == 0 && ct.Timezone != "" {
		names = []string{ct.Timezone}
	}
	if len(names) == 0 {
		names = ContactZoneNames(ct.Phone, ct.Attributes, c.DefaultCountry)
	}
	if len(names) == 0 {
		names = c.DefaultZones()
	}
	out := make([]*time.Location, 0, len(names))
	for _, n := range names {
		if loc, err := loadZone(n); err == nil {
			out = append(out, loc)
		}
	}
	if len(out) == 0 {
		// Nothing loadable: the schedule zone, or UTC as the last resort.
		if loc, err := loadZone(c.Schedule.Timezone); err == nil {
			return []*time.Location{loc}
		}
		return []*time.Location{time.UTC}
	}
	return out
}

// DefaultZones are the zones of a contact nothing else places: the schedule's
// zone when the campaign set one other than its country's default, else every
// zone CountryZones gives the campaign's default_country (all the contiguous US
// zones for a US campaign), else the schedule's zone.
func (c *Campaign) DefaultZones() []string {
	if c.Schedule.Timezone != "" && c.Schedule.Timezone != CountryTimezone(c.DefaultCountry) {
		return []string{c.Schedule.Timezone}
	}
	if zs := CountryZones(c.DefaultCountry); len(zs) > 0 {
		return zs
	}
	if c.Schedule.Timezone != "" {
		return []string{c.Schedule.Timezone}
	}
	return []string{DefaultTimezone}
}

// CountryTimezone is the schedule zone a campaign of country gets unless it sets
// one: São Paulo for Brazil, New York for the US, else the first zone the phone
// library gives the country, else DefaultTimezone.
func CountryTimezone(country string) string {
	switch strings.ToUpper(country) {
	case "BR", "":
		return DefaultTimezone
	case "US":
		return zNewYork
	}
	if zs := CountryZones(country); len(zs) > 0 {
		return zs[0]
	}
	return DefaultTimezone
}

// maxSearchDays bounds the search for the next opening: a campaign whose hours
// do not open in every zone within a year is reported closed until a year on.
const maxSearchDays = 366

// Hours says whether t is inside the campaign's calling hours in every one of
// zones and, when it is not, why (a holiday in any zone wins over the window)
// and the first instant after t when the hours are open in every zone, holidays
// included. When the hours do not open in every zone within maxSearchDays (zones
// too far apart for the windows to overlap), that instant is the end of the
// search, never zero: a caller that defers to it asks again then.
func (c *Campaign) Hours(t time.Time, zones []*time.Location) (Closure, time.Time) {
	cal := newHolidayCalendar(c.Holidays)
	closure := c.closureAt(t, zones, cal)
	if closure == Open {
		return Open, time.Time{}
	}
	return closure, c.nextOpen(t, zones, cal)
}

// closureAt is Hours without the search.
func (c *Campaign) closureAt(t time.Time, zones []*time.Location, cal *holidayCalendar) Closure {
	closure := Open
	for _, loc := range zones {
		local := t.In(loc)
		if cal.closed(loc.String(), local) {
			return ClosedHoliday
		}
		if !c.openAt(local) {
			closure = ClosedOutsideWindow
		}
	}
	return closure
}

// openAt reports whether the local instant is inside its weekday's window.
func (c *Campaign) openAt(local time.Time) bool {
	if c.WeekHours == nil {
		return c.Window.Contains(local, local.Location())
	}
	win, ok := c.day(local.Weekday())
	if !ok {
		return false
	}
	m := ClockTime(local.Hour()*60 + local.Minute())
	return m >= win.Start && m < win.End
}

// nextOpen finds the first instant after t open in every zone. The hours
// become open only where some zone's window starts or its day (and so its
// holiday) changes, so those instants are the only candidates: each zone's are
// generated in order, day by day, and merged, for at most maxSearchDays.
func (c *Campaign) nextOpen(t time.Time, zones []*time.Location, cal *holidayCalendar) time.Time {
	curs := make([]zoneCursor, len(zones))
	for i, loc := range zones {
		curs[i] = zoneCursor{c: c, base: t.In(loc)}
		curs[i].fill()
	}
	for {
		best := -1
		for i := range curs {
			if curs[i].d <= maxSearchDays && (best < 0 || curs[i].cur().Before(curs[best].cur())) {
				best = i
			}
		}
		if best < 0 {
			return t.AddDate(0, 0, maxSearchDays)
		}
		cand := curs[best].cur()
		if cand.After(t) && c.closureAt(cand, zones, cal) == Open {
			return cand
		}
		curs[best].advance()
	}
}

// zoneCursor walks one zone's candidate instants (midnight, then the day's
// window start) in order from the day of base.
type zoneCursor struct {
	c    *Campaign
	base time.Time
	d    int
	day  []time.Time
	i    int
}

func (z *zoneCursor) fill() {
	y, m, day := z.base.Date()
	loc := z.base.Location()
	midnight := time.Date(y, m, day+z.d, 0, 0, 0, 0, loc)
	z.day = append(z.day[:0], midnight)
	if win, ok := z.c.day(midnight.Weekday()); ok {
		z.day = append(z.day, time.Date(y, m, day+z.d, int(win.Start)/60, int(win.Start)%60, 0, 0, loc))
	}
	z.i = 0
}

func (z *zoneCursor) cur() time.Time { return z.day[z.i] }

func (z *zoneCursor) advance() {
	z.i++
	if z.i == len(z.day) {
		z.d++
		z.fill()
	}
}
