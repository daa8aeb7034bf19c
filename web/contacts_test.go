package web

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// contactsCSV has good rows and one of each common problem; the quoted cell of
// line 7 runs over two lines, so the row after it is line 9.
const contactsCSV = "phone,name,city\n" +
	"+5511987654321,Ana,São Paulo\n" + // 2
	"11987654322,Bruno,Rio de Janeiro\n" + // 3: national, read as BR
	",Carla,Recife\n" + // 4
	"123,Davi,Natal\n" + // 5
	"+55 11 98765-4321,Ana again,Santos\n" + // 6: Ana's number written otherwise
	"\"(21) 98765-4323\",\"Eva, Maria\",\"Salvador\nBA\"\n" + // 7-8
	"+5511987654324,Fábio,\n" // 9

func TestImportContacts(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Import")

	// The fixed answer: imported and rejected, with the file's line numbers.
	r := e.upload(t, "/api/v1/campaigns/"+c.ID+"/contacts", e.tokens[storage.RoleSales], contactsCSV)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	for _, key := range []string{"imported", "rejected"} {
		if raw[key] == nil {
			t.Errorf("%v: no %q", r, key)
		}
	}
	rep := decode[importReport](t, r, http.StatusOK)
	wantRejected := []string{"4:missing_phone", "5:invalid_number", "6:duplicate_in_file"}
	if rep.Imported != 4 || !slices.Equal(rep.rejections(), wantRejected) || rep.RejectedCount != 3 || rep.State != "done" {
		t.Errorf("report = %+v %v, want 4 imported and %v", rep, rep.rejections(), wantRejected)
	}

	// Listed in file order, with the other columns as attributes.
	list := e.contacts(t, c.ID, "")
	want := []contactView{
		{Phone: "+5511987654321", Name: "Ana", Line: 2, Attributes: map[string]string{"city": "São Paulo"}},
		{Phone: "+5511987654322", Name: "Bruno", Line: 3, Attributes: map[string]string{"city": "Rio de Janeiro"}},
		{Phone: "+5521987654323", Name: "Eva, Maria", Line: 7, Attributes: map[string]string{"city": "Salvador\nBA"}},
		{Phone: "+5511987654324", Name: "Fábio", Line: 9, Attributes: map[string]string{}},
	}
	if list.Total != len(want) || len(list.Contacts) != len(want) {
		t.Fatalf("list = %+v, want %d contacts", list, len(want))
	}
	for i, got := range list.Contacts {
		w := want[i]
		if got.Phone != w.Phone || got.Name != w.Name || got.Line != w.Line || got.Status != "pending" ||
			got.CampaignID != c.ID || got.ID == "" || fmt.Sprint(got.Attributes) != fmt.Sprint(w.Attributes) {
			t.Errorf("contact %d = %+v, want %+v", i, got, w)
		}
	}
	// attributes is always an object, even when empty.
	lr := e.get(t, "/api/v1/campaigns/"+c.ID+"/contacts?offset=3", e.tokens[storage.RoleSales])
	if !strings.Contains(string(lr.body), `"attributes":{}`) {
		t.Errorf("%v: want \"attributes\":{}", lr)
	}

	// One contact by ID.
	one := decode[contactView](t, e.get(t, "/api/v1/contacts/"+list.Contacts[2].ID, e.tokens[storage.RoleSupervisor]), http.StatusOK)
	if one.Phone != "+5521987654323" || one.Name != "Eva, Maria" || one.CampaignID != c.ID {
		t.Errorf("contact = %+v", one)
	}

	// The import's record and its rejections as CSV.
	im := decode[struct {
		ID            string `json:"id"`
		CampaignID    string `json:"campaign_id"`
		State         string `json:"state"`
		Imported      int    `json:"imported"`
		RejectedCount int    `json:"rejected_count"`
	}](t, e.get(t, "/api/v1/imports/"+rep.ImportID, e.tokens[storage.RoleSales]), http.StatusOK)
	if im.ID != rep.ImportID || im.CampaignID != c.ID || im.State != "done" || im.Imported != 4 || im.RejectedCount != 3 {
		t.Errorf("import = %+v", im)
	}
	// The rejected rows as a spreadsheet in Brazil opens them: UTF-8 with a BOM,
	// ';' between cells, the file's own columns, then line, reason and code.
	rr := e.do(t, request{method: "GET", path: "/api/v1/imports/" + rep.ImportID + "/rejections?lang=pt-BR", token: e.tokens[storage.RoleSales]})
	if rr.status != http.StatusOK || !strings.HasPrefix(rr.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("%v: want 200 text/csv", rr)
	}
	body, ok := strings.CutPrefix(string(rr.body), "\uFEFF")
	if !ok {
		t.Errorf("rejections CSV has no UTF-8 byte-order mark: %q", rr.body)
	}
	cr := csv.NewReader(strings.NewReader(body))
	cr.Comma = ';'
	records, err := cr.ReadAll()
	if err != nil {
		t.Fatalf("rejections CSV: %v", err)
	}
	wantCSV := [][]string{
		{"phone", "name", "city", "linha", "motivo", "código do motivo"},
		{"", "Carla", "Recife", "4", "sem telefone", "missing_phone"},
		{"123", "Davi", "Natal", "5", "telefone inválido: 123", "invalid_number"},
		{"'+55 11 98765-4321", "Ana again", "Santos", "6", "telefone repetido numa linha anterior do arquivo: +5511987654321", "duplicate_in_file"},
	}
	if fmt.Sprint(records) != fmt.Sprint(wantCSV) {
		t.Errorf("rejections CSV =\n%q\nwant\n%q", records, wantCSV)
	}
	// In English when the browser asks for it.
	en := e.do(t, request{method: "GET", path: "/api/v1/imports/" + rep.ImportID + "/rejections", token: e.tokens[storage.RoleSales],
		header: http.Header{"Accept-Language": {"en-US,en;q=0.9"}}})
	if !strings.HasPrefix(string(en.body), "\uFEFFphone;name;city;line;reason;reason code\r\n;Carla;Recife;4;no phone number;missing_phone\r\n") {
		t.Errorf("English rejections CSV %q", en.body)
	}
	var totals struct {
		ByReason map[string]int `json:"by_reason"`
		Columns  []string       `json:"columns"`
	}
	if err := json.Unmarshal(r.body, &totals); err != nil || fmt.Sprint(totals.ByReason) != "map[duplicate_in_file:1 invalid_number:1 missing_phone:1]" ||
		!slices.Equal(totals.Columns, []string{"phone", "name", "city"}) {
		t.Errorf("report totals %+v, columns %q (%v)", totals.ByReason, totals.Columns, err)
	}

	// The same file again imports nothing twice.
	again := e.importCSV(t, c.ID, contactsCSV)
	wantAgain := []string{"2:already_in_campaign", "3:already_in_campaign", "4:missing_phone", "5:invalid_number",
		"6:duplicate_in_file", "7:already_in_campaign", "9:already_in_campaign"}
	if again.Imported != 0 || !slices.Equal(again.rejections(), wantAgain) || again.ImportID == rep.ImportID {
		t.Errorf("second import = %+v %v, want %v", again, again.rejections(), wantAgain)
	}
	if l := e.contacts(t, c.ID, ""); l.Total != 4 {
		t.Errorf("after re-upload total = %d, want 4", l.Total)
	}
}

func TestReimportCleanFile(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Again")
	file := "phone;name\n+5511987650001;A\n+5511987650002;B\n+5511987650003;C\n"
	if first := e.importCSV(t, c.ID, file); first.Imported != 3 || len(first.Rejected) != 0 {
		t.Fatalf("first import = %+v", first)
	}
	second := e.importCSV(t, c.ID, file)
	if want := []string{"2:already_in_campaign", "3:already_in_campaign", "4:already_in_campaign"}; second.Imported != 0 ||
		!slices.Equal(second.rejections(), want) {
		t.Errorf("second import = %+v %v, want %v", second, second.rejections(), want)
	}
}

func TestImportEncodings(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		name        string
		contentType string
		body        string
		wantName    string
		wantCity    string
	}{
		{"utf-8 comma", "text/csv", "phone,name,city\n11987650001,João,Brasília\n", "João", "Brasília"},
		{"utf-8 BOM semicolon CRLF", "text/csv", "\xef\xbb\xbftelefone;nome;cidade\r\n11987650001;João;Brasília\r\n", "João", "Brasília"},
		{"windows-1252 declared", "text/csv; charset=windows-1252", "telefone;nome;cidade\r\n11987650001;Jo\xe3o;Bras\xedlia\r\n", "João", "Brasília"},
		{"windows-1252 sniffed, tab", "application/vnd.ms-excel", "telefone\tnome\tcidade\n11987650001\tJo\xe3o\tBras\xedlia\n", "João", "Brasília"},
		{"utf-16 with BOM, tab", "text/plain", utf16LE("phone\tname\tcity\n11987650001\tJoão\tBrasília\n"), "João", "Brasília"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.createCampaign(t, tt.name)
			r := e.do(t, request{method: "POST", path: "/api/v1/campaigns/" + c.ID + "/contacts", token: e.tokens[storage.RoleSales],
				body: strings.NewReader(tt.body), contentType: tt.contentType})
			if rep := decode[importReport](t, r, http.StatusOK); rep.Imported != 1 || len(rep.Rejected) != 0 {
				t.Fatalf("report = %+v", rep)
			}
			got := e.contacts(t, c.ID, "").Contacts[0]
			if got.Phone != "+5511987650001" || got.Name != tt.wantName || got.Attributes["city"] != tt.wantCity && got.Attributes["cidade"] != tt.wantCity {
				t.Errorf("contact = %+v", got)
			}
		})
	}
}

// TestImportMixedEncodings: a file whose rows mix UTF-8 and Windows-1252 (a
// list pasted together from two spreadsheets) is uploaded as the tester
// did. Undeclared, each row is read in its own encoding and every name arrives
// as written, none garbled ("JosÃ©"); declared Windows-1252, its UTF-8 rows are
// rejected mixed_encoding, line by line, and the others imported.
func TestImportMixedEncodings(t *testing.T) {
	e := newEnv(t, Config{})
	file := "telefone;nome\r\n11987650001;Jos\xe9\r\n11987650002;João\r\n11987650003;Concei\xe7\xe3o\r\n11987650004;Ângela\r\n"
	tests := []struct {
		name, contentType string
		wantNames         []string
		wantRejected      []string
	}{
		{"undeclared", "text/csv", []string{"José", "João", "Conceição", "Ângela"}, []string{}},
		{"declared Windows-1252", "text/csv; charset=windows-1252", []string{"José", "Conceição"},
			[]string{"3:mixed_encoding", "5:mixed_encoding"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.createCampaign(t, tt.name)
			r := e.do(t, request{method: "POST", path: "/api/v1/campaigns/" + c.ID + "/contacts", token: e.tokens[storage.RoleSales],
				body: strings.NewReader(file), contentType: tt.contentType})
			rep := decode[importReport](t, r, http.StatusOK)
			if rep.Imported != len(tt.wantNames) || !slices.Equal(rep.rejections(), tt.wantRejected) {
				t.Fatalf("report %+v %v, want %d imported, rejected %v", rep, rep.rejections(), len(tt.wantNames), tt.wantRejected)
			}
			var names []string
			for _, ct := range e.contacts(t, c.ID, "").Contacts {
				names = append(names, ct.Name)
			}
			if !slices.Equal(names, tt.wantNames) {
				t.Errorf("names %q, want %q", names, tt.wantNames)
			}
		})
	}
}

// utf16LE encodes s as UTF-16LE with a byte-order mark (BMP only, enough here).
func utf16LE(s string) string {
	b := []byte{0xFF, 0xFE}
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return string(b)
}

func TestListContactsFilters(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Filters")
	first := e.importCSV(t, c.ID, contactsCSV)
	second := e.importCSV(t, c.ID, "phone\n+5521987650009\n")
	all := []string{"+5511987654321", "+5511987654322", "+5521987654323", "+5511987654324", "+5521987650009"}

	tests := []struct {
		query string
		want  []string
		total int
	}{
		{"", all, 5},
		{"?limit=2", all[:2], 5},
		{"?limit=2&offset=1", all[1:3], 5},
		{"?offset=4", all[4:], 5},
		{"?offset=10", []string{}, 5},
		{"?limit=1000", all, 5},
		{"?status=pending", all, 5},
		{"?status=done", []string{}, 0},
		{"?phone=%2B5521", []string{all[2], all[4]}, 2},
		{"?phone=551198765432", []string{all[0], all[1], all[3]}, 3},
		{"?import_id=" + first.ImportID, all[:4], 4},
		{"?import_id=" + second.ImportID + "&limit=5", all[4:], 1},
		{"?phone=5511&limit=1&offset=1", all[1:2], 3},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			l := e.contacts(t, c.ID, tt.query)
			if !slices.Equal(l.phones(), tt.want) || l.Total != tt.total {
				t.Errorf("phones = %v total %d, want %v total %d", l.phones(), l.Total, tt.want, tt.total)
			}
		})
	}

	bad := []string{"?limit=abc", "?limit=-1", "?limit=1001", "?offset=x", "?offset=-5", "?import_id=x", "?import_id=0", "?limit=1.5"}
	for _, q := range bad {
		t.Run("bad "+q, func(t *testing.T) {
			wantError(t, e.get(t, "/api/v1/campaigns/"+c.ID+"/contacts"+q, e.tokens[storage.RoleSales]), 400, "bad_request")
		})
	}
}

func TestImportErrors(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t, Config{MaxImportBytes: limit, ImportBatchRows: 500})
	sales := e.tokens[storage.RoleSales]
	c := e.createCampaign(t, "Errors")
	path := "/api/v1/campaigns/" + c.ID + "/contacts"

	var big strings.Builder
	var bigPhones []string
	big.WriteString("phone,name\n")
	for i := 0; big.Len() < 4*limit; i++ {
		bigPhones = append(bigPhones, fmt.Sprintf("+55119876%05d", i))
		fmt.Fprintf(&big, "%s,Contact %d\n", bigPhones[i], i)
	}
	wide := strings.Repeat("c,", 300) + "phone\n"

	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		chunked     bool
		status      int
		code        string
		reason      string // of an invalid file, for a page to translate
	}{
		{"no phone column", path, "text/csv", "name,city\nAna,Recife\n", false, 422, "invalid_file", "no_phone_column"},
		{"empty file", path, "text/csv", "", false, 422, "invalid_file", "no_header"},
		{"blank lines only", path, "text/csv", "\n\n\n", false, 422, "invalid_file", "no_header"},
		{"duplicate column", path, "text/csv", "phone,name,phone\n1,2,3\n", false, 422, "invalid_file", "duplicate_column"},
		{"too many columns", path, "text/csv", wide, false, 422, "invalid_file", "too_many_columns"},
		{"unsupported charset", path, "text/csv; charset=ebcdic", "phone\n+5511987654321\n", false, 422, "invalid_file", "unsupported_encoding"},
		{"malformed header", path, "text/csv; charset=utf-8", "ph\xffone,name\n+5511987654321,A\n", false, 422, "invalid_file", "bad_header"},
		{"JSON content type", path, "application/json", `{"phone":"+5511987654321"}`, false, 415, "unsupported_media_type", ""},
		{"no content type", path, "", "phone\n+5511987654321\n", false, 415, "unsupported_media_type", ""},
		{"image content type", path, "image/png", "phone\n+5511987654321\n", false, 415, "unsupported_media_type", ""},
		{"too large, length known", path, "text/csv", big.String(), false, 413, "body_too_large", ""},
		{"unknown campaign", "/api/v1/campaigns/999999/contacts", "text/csv", "phone\n+5511987654321\n", false, 404, "not_found", ""},
		{"non-numeric campaign", "/api/v1/campaigns/abc/contacts", "text/csv", "phone\n+5511987654321\n", false, 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wantError(t, e.do(t, request{method: "POST", path: tt.path, token: sales, body: strings.NewReader(tt.body),
				contentType: tt.contentType, chunked: tt.chunked}), tt.status, tt.code)
			if got.Reason != tt.reason {
				t.Errorf("reason %q, want %q", got.Reason, tt.reason)
			}
		})
	}
	if l := e.contacts(t, c.ID, ""); l.Total != 0 {
		t.Fatalf("refused files stored %d contacts", l.Total)
	}

	// Sent chunked, the size shows only while reading: the batches committed before
	// the limit stand, whole, and the rest of the file is refused. Where a batch ends
	// depends on time as well as rows (a batch is committed after 500 rows or 500 ms,
	// whichever comes first), so what is checked is what holds however slow the
	// machine: the rows stored are the file's first ones, all within the limit, at
	// least the first batch, and exactly the rows the import's record says it
	// committed (no half batch).
	wantError(t, e.do(t, request{method: "POST", path: path, token: sales, body: strings.NewReader(big.String()),
		contentType: "text/csv", chunked: true}), 413, "body_too_large")
	var stored []string
	for offset := 0; ; offset += 1000 {
		page := e.contacts(t, c.ID, fmt.Sprintf("?limit=1000&offset=%d", offset))
		stored = append(stored, page.phones()...)
		if len(page.Contacts) < 1000 {
			break
		}
	}
	n := len(stored)
	if n < 500 || n > len(bigPhones) || !slices.Equal(stored, bigPhones[:n]) {
		t.Fatalf("after a chunked upload over the limit, %d contacts are stored: want the file's first rows, at least a batch of 500", n)
	}
	if within := strings.Index(big.String(), bigPhones[n-1]) + len(bigPhones[n-1]); within > limit {
		t.Errorf("%d contacts stored, reaching byte %d of the file: past the limit of %d", n, within, limit)
	}
	raw, err := sql.Open("sqlite3", "file:"+e.dbPath+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var importID int64
	if err := raw.QueryRow(`SELECT max(id) FROM imports WHERE campaign_id = ?`, mustID(t, c.ID)).Scan(&importID); err != nil {
		t.Fatal(err)
	}
	im, err := e.db.GetImport(context.Background(), importID)
	if err != nil {
		t.Fatal(err)
	}
	if im.Imported != n {
		t.Errorf("the import's record says %d rows imported, %d are stored", im.Imported, n)
	}

	wantError(t, e.get(t, "/api/v1/imports/999999", sales), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/imports/999999/rejections", sales), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/imports/x/rejections", sales), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/contacts/999999", sales), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/contacts/abc", sales), 404, "not_found")
	wantError(t, e.get(t, "/api/v1/campaigns/999999/contacts", sales), 404, "not_found")
}

// TestImportManyRows imports more rows than a batch and a page, and checks order
// and counts across them.
func TestImportManyRows(t *testing.T) {
	e := newEnv(t, Config{ImportBatchRows: 400})
	c := e.createCampaign(t, "Many")
	const n = 2500
	var b strings.Builder
	b.WriteString("phone,seq\n")
	for i := range n {
		if i%1000 == 999 {
			b.WriteString("bad,x\n") // line i+2
		}
		fmt.Fprintf(&b, "+55119876%05d,%d\n", i, i)
	}
	rep := e.importCSV(t, c.ID, b.String())
	if want := []string{"1001:invalid_number", "2002:invalid_number"}; rep.Imported != n || !slices.Equal(rep.rejections(), want) {
		t.Fatalf("report: imported %d rejected %v, want %d and %v", rep.Imported, rep.rejections(), n, want)
	}
	page := e.contacts(t, c.ID, "?limit=1000&offset=1500")
	if page.Total != n || len(page.Contacts) != 1000 {
		t.Fatalf("page: total %d, %d contacts", page.Total, len(page.Contacts))
	}
	for i, ct := range page.Contacts {
		if want := fmt.Sprint(1500 + i); ct.Attributes["seq"] != want {
			t.Fatalf("contact %d of the page has seq %q, want %s", i, ct.Attributes["seq"], want)
		}
	}
}

// TestRejectionsCSVIsNotAFormula: a rejected row's cells that a spreadsheet would
// run as a formula (=, +, -, @, tab, CR first) come back in the rejections CSV
// behind a "'", which makes them text; a phone written with "+" is text too, and
// the importer reads it as the same phone.
func TestRejectionsCSVIsNotAFormula(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.createCampaign(t, "Fórmulas")
	rep := e.importCSV(t, c.ID, "phone;name;=plan\n"+
		"+5511960000082;Ana;ouro\n"+
		"+5511960000082;=cmd|' /C calc'!A0;@SUM(1+1)\n"+ // 3: repeated phone
		"-2+3+cmd|' /C calc'!A0;\"\tTab\";\"\rCR\"\n"+ // 4: not a phone
		"x;Bia;ouro+1\n") // 5: not a phone, nothing to guard
	if got, want := rep.rejections(), []string{"3:duplicate_in_file", "4:invalid_number", "5:invalid_number"}; !slices.Equal(got, want) {
		t.Fatalf("rejected %v, want %v", got, want)
	}
	rr := e.do(t, request{method: "GET", path: "/api/v1/imports/" + rep.ImportID + "/rejections?lang=en", token: e.tokens[storage.RoleSales]})
	cr := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(rr.body), "\uFEFF")))
	cr.Comma = ';'
	records, err := cr.ReadAll()
	if err != nil {
		t.Fatalf("rejections CSV %q: %v", rr.body, err)
	}
	want := [][]string{
		{"phone", "name", "'=plan", "line", "reason", "reason code"},
		{"'+5511960000082", "'=cmd|' /C calc'!A0", "'@SUM(1+1)", "3", "number already on an earlier line of the file: +5511960000082", "duplicate_in_file"},
		{"'-2+3+cmd|' /C calc'!A0", "'\tTab", "'CR", "4", "not a valid phone number: -2+3+cmd|' /C calc'!A0", "invalid_number"},
		{"x", "Bia", "ouro+1", "5", "not a valid phone number: x", "invalid_number"},
	}
	if fmt.Sprintf("%q", records) != fmt.Sprintf("%q", want) {
		t.Errorf("rejections CSV =\n%q\nwant\n%q", records, want)
	}
	// encoding/csv's writer with CRLF drops a lone CR, so "'CR" above shows the
	// guard but not the CR; the guard itself, cell by cell:
	for in, want := range map[string]string{"\rCR": "'\rCR", "\tTab": "'\tTab", "-1": "'-1", "Ana": "Ana", "": "", "0800 1+1": "0800 1+1"} {
		if got := spreadsheetText(in); got != want {
			t.Errorf("spreadsheetText(%q) = %q, want %q", in, got, want)
		}
	}
	for _, row := range records[1:] {
		for i, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("line %s, cell %d %q starts a formula", row[3], i, cell)
			}
		}
	}
	// Fixed in the spreadsheet and sent again, the guarded phone is the phone.
	again := e.createCampaign(t, "De novo")
	if back := e.importCSV(t, again.ID, "phone\n"+records[1][0]+"\n"); back.Imported != 1 || len(back.Rejected) != 0 {
		t.Fatalf("%q imported again: %+v", records[1][0], back)
	}
	if got := e.contacts(t, again.ID, "").Contacts; len(got) != 1 || got[0].Phone != "+5511960000082" {
		t.Errorf("%q imported again as %+v, want +5511960000082", records[1][0], got)
	}
}
