package campaigns

import (
	"fmt"
	"time"
)

// Holidays says which days the calling hours are closed besides the weekdays
// with no hours: the national holidays of the contact's own country (Brazil's
// and the US federal ones are built in) and the campaign's own dates.
type Holidays struct {
	// National closes on the national holidays of the country of each zone the
	// contact may be in. Nil reads as true: on unless switched off.
	National *bool `json:"national,omitempty"`
	// Optional also closes on Brazil's optional days (ponto facultativo):
	// Carnival Monday and Tuesday and Corpus Christi.
	Optional bool `json:"optional"`
	// Dates are the campaign's own closed days (state and city holidays), as
	// YYYY-MM-DD, in every zone.
	Dates []string `json:"dates,omitempty"`
}

// nationalOn reports whether national holidays apply.
func (h Holidays) nationalOn() bool { return h.National == nil || *h.National }

// validate adds a message per bad date to bad, under field.
func (h Holidays) validate(field string, bad map[string]string) {
	for i, d := range h.Dates {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			bad[fmt.Sprintf("%s.dates[%d]", field, i)] = fmt.Sprintf("%q is not a date (YYYY-MM-DD)", d)
		}
	}
}

// dayKey is a calendar day, for comparing dates across zones.
type dayKey struct {
	y int
	m time.Month
	d int
}

func keyOf(t time.Time) dayKey { return dayKey{t.Year(), t.Month(), t.Day()} }

// Easter returns Easter Sunday of the Gregorian year (the anonymous Gregorian
// algorithm, "Meeus/Jones/Butcher").
func Easter(year int) time.Time {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
}

// BrazilHolidays returns Brazil's national holidays of year (Lei 662/1949,
// 6.802/1980, 14.759/2023 for 20 November from 2024, and Good Friday) and, with
// optional, the optional days federal offices close on (Carnival Monday and
// Tuesday, Corpus Christi), each at midnight UTC, keyed by day.
func BrazilHolidays(year int, optional bool) map[time.Time]string {
	d := func(m time.Month, day int) time.Time { return time.Date(year, m, day, 0, 0, 0, 0, time.UTC) }
	out := map[time.Time]string{
		d(time.January, 1):             "Confraternização Universal",
		d(time.April, 21):              "Tiradentes",
		d(time.May, 1):                 "Dia do Trabalho",
		d(time.September, 7):           "Independência",
		d(time.October, 12):            "Nossa Senhora Aparecida",
		d(time.November, 2):            "Finados",
		d(time.November, 15):           "Proclamação da República",
		d(time.December, 25):           "Natal",
		Easter(year).AddDate(0, 0, -2): "Sexta-feira Santa",
	}
	if year >= 2024 {
		out[d(time.November, 20)] = "Dia Nacional de Zumbi e da Consciência Negra"
	}
	if optional {
		e := Easter(year)
		out[e.AddDate(0, 0, -48)] = "Carnaval (segunda-feira)"
		out[e.AddDate(0, 0, -47)] = "Carnaval (terça-feira)"
		out[e.AddDate(0, 0, 60)] = "Corpus Christi"
	}
	return out
}

// USHolidays returns the US federal holidays of year (5 U.S.C. 6103), each on
// the day it is observed (a Saturday date on the Friday before, a Sunday date on
// the Monday after) and, for the fixed-date ones, on the date itself too: people
// keep the day itself, and some states' calling rules name it, so both close.
// New Year's Day of year+1 falling on a Saturday is observed on 31 December of
// year, and is included.
func USHolidays(year int) map[time.Time]string {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	observed := func(t time.Time) time.Time {
		switch t.Weekday() {
		case time.Saturday:
			return t.AddDate(0, 0, -1)
		case time.Sunday:
			return t.AddDate(0, 0, 1)
		}
		return t
	}
	// nth weekday of a month; n < 0 counts from the end.
	nth := func(m time.Month, wd time.Weekday, n int) time.Time {
		if n > 0 {
			t := d(year, m, 1)
			t = t.AddDate(0, 0, (int(wd)-int(t.Weekday())+7)%7)
			return t.AddDate(0, 0, 7*(n-1))
		}
		t := d(year, m+1, 1).AddDate(0, 0, -1)
		return t.AddDate(0, 0, -((int(t.Weekday()) - int(wd) + 7) % 7))
	}
	out := map[time.Time]string{
		observed(d(year, time.January, 1)):   "New Year's Day",
		nth(time.January, time.Monday, 3):    "Birthday of Martin Luther King, Jr.",
		nth(time.February, time.Monday, 3):   "Washington's Birthday",
		nth(time.May, time.Monday, -1):       "Memorial Day",
		observed(d(year, time.June, 19)):     "Juneteenth National Independence Day",
		observed(d(year, time.July, 4)):      "Independence Day",
		nth(time.September, time.Monday, 1):  "Labor Day",
		nth(time.October, time.Monday, 2):    "Columbus Day",
		observed(d(year, time.November, 11)): "Veterans Day",
		nth(time.November, time.Thursday, 4): "Thanksgiving Day",
		observed(d(year, time.December, 25)): "Christmas Day",
	}
	for _, f := range []struct {
		m    time.Month
		day  int
		name string
	}{{time.January, 1, "New Year's Day"}, {time.June, 19, "Juneteenth National Independence Day"},
		{time.July, 4, "Independence Day"}, {time.November, 11, "Veterans Day"}, {time.December, 25, "Christmas Day"}} {
		if f.m == time.June && year < 2021 {
			continue
		}
		out[d(year, f.m, f.day)] = f.name
	}
	if ny := observed(d(year+1, time.January, 1)); ny.Year() == year {
		out[ny] = "New Year's Day"
	}
	if year < 2021 {
		delete(out, observed(d(year, time.June, 19)))
		delete(out, d(year, time.June, 19))
	}
	return out
}

// holidayCalendar answers "is this local day closed" for one campaign, caching
// each country's holidays per year for the span of one Hours call.
type holidayCalendar struct {
	h     Holidays
	own   map[dayKey]bool
	years map[string]map[int]map[dayKey]bool
}

func newHolidayCalendar(h Holidays) *holidayCalendar {
	cal := &holidayCalendar{h: h, own: map[dayKey]bool{}, years: map[string]map[int]map[dayKey]bool{}}
	for _, s := range h.Dates {
		if t, err := time.Parse(time.DateOnly, s); err == nil {
			cal.own[keyOf(t)] = true
		}
	}
	return cal
}

// closed reports whether local's day is a holiday for a person in zone.
func (cal *holidayCalendar) closed(zone string, local time.Time) bool {
	k := keyOf(local)
	if cal.own[k] {
		return true
	}
	if !cal.h.nationalOn() {
		return false
	}
	country := countryOfZone[zone]
	if country == "" {
		return false
	}
	byYear := cal.years[country]
	if byYear == nil {
		byYear = map[int]map[dayKey]bool{}
		cal.years[country] = byYear
	}
	days, ok := byYear[k.y]
	if !ok {
		var src map[time.Time]string
		if country == "BR" {
			src = BrazilHolidays(k.y, cal.h.Optional)
		} else {
			src = USHolidays(k.y)
		}
		days = make(map[dayKey]bool, len(src))
		for t := range src {
			days[keyOf(t)] = true
		}
		byYear[k.y] = days
	}
	return days[k]
}
