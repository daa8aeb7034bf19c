package web

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/turbina-dialer/turbina/storage"
)

// TestBrowserSalesSetsCallingHoursAndHolidays: in the campaign editor a sales
// user opens Saturday 10:00–16:00 and adds a city holiday, in words and time
// fields; the API reads back what was set, the editor shows it again, and the
// page speaks Portuguese too.
func TestBrowserSalesSetsCallingHoursAndHolidays(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t, Config{})
	p := openBrowser(t, e)
	p.signIn("sales1", "/sales")
	p.do("new campaign",
		chromedp.Click(chromedp.CSS("#new-campaign")),
		chromedp.WaitVisible(chromedp.CSS("#f-name")),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "Horários"),
		chromedp.SendKeys(chromedp.CSS("#f-caller"), "+551130000000"),
	)
	p.waitJS("weekday rows", `document.querySelectorAll('#hours tbody tr').length === 7`, 5*time.Second)
	if got := eval[bool](p, `document.querySelector('#hours tr[data-day=sat] .h-open').checked`); got {
		t.Error("a new campaign opens on Saturday")
	}
	p.do("open Saturday 10:00–16:00 and add a holiday",
		chromedp.Click(chromedp.CSS("#hours tr[data-day=sat] .h-open")),
		chromedp.SetValue(chromedp.CSS("#hours tr[data-day=sat] .h-start"), "10:00"),
		chromedp.SetValue(chromedp.CSS("#hours tr[data-day=sat] .h-end"), "16:00"),
		chromedp.Click(chromedp.CSS("#f-hol-optional")),
		chromedp.SendKeys(chromedp.CSS("#f-hol-dates"), "2027-01-25"),
	)
	p.shot("hours")
	p.do("save", chromedp.Click(chromedp.CSS("#save-campaign")))
	p.waitJS("saved", `document.getElementById('editor-status').textContent !== ''`, 5*time.Second)
	if got := p.text("#editor-status"); got != "Saved." {
		t.Fatalf("editor status %q", got)
	}

	list := decode[struct {
		Campaigns []hoursView `json:"campaigns"`
	}](t, e.get(t, "/api/v1/campaigns", e.tokens[storage.RoleSales]), http.StatusOK)
	if len(list.Campaigns) != 1 {
		t.Fatalf("campaigns %+v", list.Campaigns)
	}
	c := list.Campaigns[0]
	if sat := c.CallingHours["sat"]; sat.Start != "10:00" || sat.End != "16:00" {
		t.Errorf("Saturday %+v", sat)
	}
	if mon := c.CallingHours["mon"]; mon.Start != "09:00" || mon.End != "21:00" {
		t.Errorf("Monday %+v", mon)
	}
	if _, open := c.CallingHours["sun"]; open || len(c.CallingHours) != 6 {
		t.Errorf("hours %+v, want Monday to Saturday", c.CallingHours)
	}
	if !slices.Equal(c.Holidays.Dates, []string{"2027-01-25"}) || !c.Holidays.Optional || c.Holidays.National == nil || !*c.Holidays.National {
		t.Errorf("holidays %+v", c.Holidays)
	}

	// A bad day is refused with the field named, and nothing changes.
	p.do("make Saturday end before it starts",
		chromedp.SetValue(chromedp.CSS("#hours tr[data-day=sat] .h-end"), "09:00"),
		chromedp.Click(chromedp.CSS("#save-campaign")))
	p.waitJS("refused", `document.getElementById('editor-status').textContent === '1 field to fix, shown in red.'`, 5*time.Second)
	if got := p.fieldError("#hours tr[data-day=sat] .h-end"); got != "Must be after 10:00." {
		t.Errorf("Saturday's error %q", got)
	}
	again := decode[hoursView](t, e.get(t, "/api/v1/campaigns/"+c.ID, e.tokens[storage.RoleSales]), http.StatusOK)
	if again.CallingHours["sat"].End != "16:00" {
		t.Errorf("refused edit changed Saturday: %+v", again.CallingHours["sat"])
	}

	// An upload with numbers whose zone is ambiguous says how many.
	p.do("cancel", chromedp.Click(chromedp.CSS("#cancel-edit")))
	file := filepath.Join(t.TempDir(), "zonas.csv")
	if err := os.WriteFile(file, []byte("phone\n81987654321\n97987654322\n11987654323\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do("upload", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{file}))
	p.waitJS("report shown", `!document.getElementById('report').hidden`, 10*time.Second)
	if got := p.text("#report-summary"); !strings.Contains(got, "2 contacts may be in more than one time zone") {
		t.Errorf("summary %q", got)
	}

	// The editor shows what is stored, in Portuguese after the switch.
	p.do("switch language", chromedp.SetValue(chromedp.CSS("#lang-switch"), "pt-BR"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang-switch').dispatchEvent(new Event('change'))`))
	p.waitJS("edit button", `document.querySelector('#campaigns tbody .actions button') !== null`, 5*time.Second)
	p.do("reopen", chromedp.Click(chromedp.CSS("#campaigns tbody .actions button")))
	p.waitJS("rows again", `document.querySelector('#hours tr[data-day=sat] .h-end')?.value === '16:00'`, 5*time.Second)
	if got := p.text("#hours tr[data-day=sat] th"); got != "Sábado" {
		t.Errorf("Saturday in Portuguese: %q", got)
	}
	if got := eval[string](p, `document.getElementById('f-hol-dates').value`); strings.TrimSpace(got) != "2027-01-25" {
		t.Errorf("dates shown %q", got)
	}
	p.shot("hours-pt-BR")
}
