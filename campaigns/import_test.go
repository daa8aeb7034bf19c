package campaigns

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/encoding/unicode"
)

// want is one expected row of an import.
type want struct {
	line   int
	phone  string       // E.164 of a contact; "" for a rejection
	reason RejectReason // of a rejection
	name   string       // checked when not ""
	wa     string       // checked when not ""
	tz     string       // checked when not ""
	zones  []string     // checked when not nil
	attrs  map[string]string
}

// importAll reads every row of data, failing the test on an error.
func importAll(t *testing.T, data []byte, opts ImportOptions) []ImportRow {
	t.Helper()
	ir, err := NewImportReader(bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("NewImportReader: %v", err)
	}
	var rows []ImportRow
	for {
		row, err := ir.Next()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatalf("Next after %d rows: %v", len(rows), err)
		}
		rows = append(rows, row)
		if len(rows) > 1_000_000 {
			t.Fatal("Next does not stop")
		}
	}
}

// checkRows compares rows with the expected ones.
func checkRows(t *testing.T, rows []ImportRow, wants []want) {
	t.Helper()
	if len(rows) != len(wants) {
		for _, r := range rows {
			t.Logf("got line %d: %+v reject=%+v", r.Line, r.Contact, r.Reject)
		}
		t.Fatalf("got %d rows, want %d", len(rows), len(wants))
	}
	for i, w := range wants {
		r := rows[i]
		if r.Line != w.line {
			t.Errorf("row %d: line %d, want %d", i, r.Line, w.line)
		}
		if w.phone == "" {
			if r.Reject == nil {
				t.Errorf("line %d: got contact %+v, want rejection %s", w.line, r.Contact, w.reason)
				continue
			}
			if r.Reject.Reason != w.reason || r.Reject.Line != w.line {
				t.Errorf("line %d: got rejection %+v, want %s", w.line, *r.Reject, w.reason)
			}
			continue
		}
		if r.Reject != nil {
			t.Errorf("line %d: got rejection %+v, want contact %s", w.line, *r.Reject, w.phone)
			continue
		}
		c := r.Contact
		if c.Phone != w.phone || c.Line != w.line {
			t.Errorf("line %d: phone %q line %d, want %q", w.line, c.Phone, c.Line, w.phone)
		}
		if w.name != "" && c.Name != w.name {
			t.Errorf("line %d: name %q, want %q", w.line, c.Name, w.name)
		}
		if w.wa != "" && c.WhatsApp != w.wa {
			t.Errorf("line %d: whatsapp %q, want %q", w.line, c.WhatsApp, w.wa)
		}
		if w.tz != "" && c.Timezone != w.tz {
			t.Errorf("line %d: timezone %q, want %q", w.line, c.Timezone, w.tz)
		}
		if w.zones != nil && !slices.Equal(c.Zones, w.zones) {
			t.Errorf("line %d: zones %v, want %v", w.line, c.Zones, w.zones)
		}
		if w.attrs != nil && fmt.Sprint(c.Attributes) != fmt.Sprint(w.attrs) {
			t.Errorf("line %d: attributes %v, want %v", w.line, c.Attributes, w.attrs)
		}
		if c.Attributes == nil {
			t.Errorf("line %d: nil attributes", w.line)
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "import", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportReaderFiles(t *testing.T) {
	br := ImportOptions{DefaultCountry: "BR"}
	tests := []struct {
		file  string
		opts  ImportOptions
		wants []want
	}{
		{"utf8_bom.csv", br, []want{
			{line: 2, phone: "+5511987654321", name: "João da Silva", tz: "America/Sao_Paulo", attrs: map[string]string{"Email": "joao@example.com"}},
			{line: 3, phone: "+5521998765432", name: "Maria Conceição", attrs: map[string]string{}},
		}},
		{"cp1252_semicolon_crlf.csv", br, []want{
			{line: 2, phone: "+5511987654321", name: "João", attrs: map[string]string{"cidade": "São Paulo"}},
			{line: 3, phone: "+5592987654321", name: "Conceição", tz: "America/Manaus", attrs: map[string]string{"cidade": "Manaus"}},
		}},
		{"cp1252_semicolon_crlf.csv", ImportOptions{DefaultCountry: "BR", Charset: "Windows-1252"}, []want{
			{line: 2, phone: "+5511987654321", name: "João"},
			{line: 3, phone: "+5592987654321", name: "Conceição"},
		}},
		{"quoted_newlines.csv", br, []want{
			{line: 2, phone: "+5511987654321", name: "Silva, Ana", attrs: map[string]string{"notes": "line one\nline two\nline three"}},
			{line: 5, phone: "+5511987654322", name: `Costa "Zeca"`, attrs: map[string]string{"notes": "plain"}},
			{line: 6, phone: "+5511987654323", name: "Bruno", attrs: map[string]string{"notes": "a\nb"}},
			{line: 8, phone: "+5511987654324", name: "Carla"},
		}},
		{"br_formats.csv", br, []want{
			{line: 2, phone: "+5511987654321"}, // (11) 98765-4321
			{line: 3, phone: "+5511987654322"}, // trunk prefix 0
			{line: 4, phone: "+5511987654323"}, // 0 + carrier 15
			{line: 5, phone: "+5511987654324"}, // 0xx
			{line: 6, phone: "+5511987654325"}, // +55
			{line: 7, phone: "+5511987654326"}, // 55 without +
			{line: 8, phone: "+5511987654327"}, // bare national
			{line: 9, phone: "+5511987654328"}, // 55 with spaces
		}},
		{"rejections.csv", ImportOptions{DefaultCountry: "BR", Charset: "utf-8"}, []want{
			{line: 2, phone: "+5511987654321", name: "Ana"},
			{line: 3, reason: RejectMissingPhone},
			{line: 4, reason: RejectInvalidNumber},
			{line: 5, reason: RejectInvalidWhatsApp},
			{line: 6, reason: RejectInvalidTimezone},
			{line: 7, reason: RejectDuplicateInFile},
			{line: 8, reason: RejectTooManyColumns},
			{line: 10, phone: "+5511987654325", name: "Eva"},
			{line: 11, reason: RejectBadEncoding},
			{line: 12, reason: RejectFieldTooLong},
			{line: 13, reason: RejectMalformedRow},
			{line: 14, phone: "+5511987654329", name: "Gil"},
		}},
		{"timezones.csv", br, []want{
			{line: 2, phone: "+5511987654321", tz: "America/Sao_Paulo", attrs: map[string]string{"empresa": "Acme"}},
			{line: 3, phone: "+5592987654321", tz: "America/Manaus", attrs: map[string]string{}},
			{line: 4, phone: "+5568999876543", tz: "America/Sao_Paulo"}, // column beats number (Acre)
			// DDD 81 includes Fernando de Noronha: ambiguous, no single zone.
			{line: 5, phone: "+5581987654321", wa: "+5511987654321", zones: []string{"America/Recife", "America/Noronha"}},
			{line: 6, phone: "+12125550100", tz: "America/New_York"},
		}},
		{"tab_delimited.tsv", br, []want{
			{line: 2, phone: "+5521987654321", name: "Luís", attrs: map[string]string{"plano": "gold"}},
			{line: 4, phone: "+5521987654322", name: "Rê", attrs: map[string]string{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.opts.Charset, func(t *testing.T) {
			t.Parallel()
			checkRows(t, importAll(t, readTestdata(t, tt.file), tt.opts), tt.wants)
		})
	}
}

func TestImportReaderInline(t *testing.T) {
	br := ImportOptions{DefaultCountry: "BR"}
	tests := []struct {
		name  string
		data  string
		opts  ImportOptions
		wants []want
	}{
		{"LF, no final newline", "phone\n11987654321", br, []want{{line: 2, phone: "+5511987654321"}}},
		{"blank lines and delimiter-only lines are skipped", "\n\nphone,name\n\n,\n  \n11987654321,A\r\n\r\n", br,
			[]want{{line: 7, phone: "+5511987654321", name: "A"}}},
		{"header aliases and case", " TELEFONE ; Nome ; WhatsApp_Number ; Fuso \n11987654321;Ana;21987654321;America/Bahia\n", br,
			[]want{{line: 2, phone: "+5511987654321", name: "Ana", wa: "+5521987654321", tz: "America/Bahia"}}},
		{"whatsapp equal to phone is stored empty", "phone,wa\n11987654321,(11) 98765-4321\n", br,
			[]want{{line: 2, phone: "+5511987654321"}}},
		{"phone beats numero; numero is an attribute", "Número,Telefone\n123,11987654321\n", br,
			[]want{{line: 2, phone: "+5511987654321", attrs: map[string]string{"Número": "123"}}}},
		{"Phone Number with a space", "Phone Number\n11987654321\n", br, []want{{line: 2, phone: "+5511987654321"}}},
		{"empty interior header is column_N", "phone,,x\n11987654321,v,\n", br,
			[]want{{line: 2, phone: "+5511987654321", attrs: map[string]string{"column_2": "v"}}}},
		{"trailing empty header cells dropped", "phone;name;;\n11987654321;A;;\n11987654322;B;;z\n", br,
			[]want{{line: 2, phone: "+5511987654321"}, {line: 3, reason: RejectTooManyColumns}}},
		{"fewer fields than header", "phone,name,city\n11987654321\n", br,
			[]want{{line: 2, phone: "+5511987654321", attrs: map[string]string{}}}},
		{"bare quote in unquoted field", "phone,name\n11987654321,Ana \"Bia\" Souza\n11987654322,x\n", br,
			[]want{{line: 2, phone: "+5511987654321", name: `Ana "Bia" Souza`}, {line: 3, phone: "+5511987654322"}}},
		{"text after closing quote on one line", "phone,name\n11987654321,\"Ana\" Souza\n", br,
			[]want{{line: 2, phone: "+5511987654321", name: "Ana Souza"}}},
		{"stray quote swallowing rows is rejected alone", "phone,name\n11987654321,\"Ana\n11987654322,Bia\n11987654323,\"Caio\" x\n11987654324,Duda\n", br,
			[]want{{line: 2, reason: RejectMalformedRow}, {line: 3, phone: "+5511987654322"}, {line: 4, phone: "+5511987654323", name: "Caio x"}, {line: 5, phone: "+5511987654324"}}},
		{"quoted newline record with too many fields is given up", "phone,name\n11987654321,\"Ana\n\",x,y\n11987654322,B\n", br,
			[]want{{line: 2, reason: RejectMalformedRow}, {line: 3, reason: RejectMalformedRow}, {line: 4, phone: "+5511987654322"}}},
		{"quoted newline record with too many cells is given up", "phone,name\n11987654321,\"Ana\n\",x,y\n\"11987654322\",B\n", br,
			[]want{{line: 2, reason: RejectMalformedRow}, {line: 3, reason: RejectMalformedRow}, {line: 4, phone: "+5511987654322"}}},
		{"quoted newline record with too many cells on its last line", "phone,name\n11987654321,\"Ana\nSouza\",x\n11987654322,B\n", br,
			[]want{{line: 2, reason: RejectMalformedRow}, {line: 3, reason: RejectInvalidNumber}, {line: 4, phone: "+5511987654322"}}},
		{"duplicate after rejected first row is kept", "phone,tz\n11987654321,Nowhere/City\n11987654321,\n11987654321,\n", br,
			[]want{{line: 2, reason: RejectInvalidTimezone}, {line: 3, phone: "+5511987654321"}, {line: 4, reason: RejectDuplicateInFile}}},
		{"letters in a number are refused", "phone\n(62) 9ABCD-1234\n(62) 99999-1234\n", br,
			[]want{{line: 2, reason: RejectInvalidNumber}, {line: 3, phone: "+5562999991234"}}},
		{"Local time zone is refused", "phone,timezone\n11987654321,Local\n", br, []want{{line: 2, reason: RejectInvalidTimezone}}},
		{"small field limit", "phone,name\n11987654321,abcdef\n11987654322,abc\n", ImportOptions{DefaultCountry: "BR", MaxFieldBytes: 11},
			[]want{{line: 2, phone: "+5511987654321"}, {line: 3, phone: "+5511987654322"}}},
		{"field over the limit", "phone,name\n11987654321,abcdefghijkl\n", ImportOptions{DefaultCountry: "BR", MaxFieldBytes: 11},
			[]want{{line: 2, reason: RejectFieldTooLong}}},
		{"pipe delimiter forced", "phone|name\n11987654321|A,B\n", ImportOptions{DefaultCountry: "BR", Delimiter: '|'},
			[]want{{line: 2, phone: "+5511987654321", name: "A,B"}}},
		{"pipe delimiter sniffed", "phone|name|obs\n11987654321|A, B|x;y\n", br,
			[]want{{line: 2, phone: "+5511987654321", name: "A, B", attrs: map[string]string{"obs": "x;y"}}}},
		{"foreign number with +", "phone\n+44 20 7946 0958\n", br, []want{{line: 2, phone: "+442079460958", tz: "Europe/London"}}},
		{"no default country needs +", "phone\n11987654321\n+5511987654321\n", ImportOptions{},
			[]want{{line: 2, reason: RejectInvalidNumber}, {line: 3, phone: "+5511987654321"}}},
		{"Windows-1252 undefined byte", "phone,name\n11987654321,a\x81b\n11987654322,Jo\xe3o\n", ImportOptions{DefaultCountry: "BR", Charset: "cp1252"},
			[]want{{line: 2, reason: RejectBadEncoding}, {line: 3, phone: "+5511987654322", name: "João"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRows(t, importAll(t, []byte(tt.data), tt.opts), tt.wants)
		})
	}
}

func TestImportReaderEncodings(t *testing.T) {
	asciiPad := func(n int) string {
		var b strings.Builder
		b.WriteString("phone,name\n")
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "1198%07d,Cliente %d\n", i, i)
		}
		return b.String()
	}
	pad := asciiPad(70 << 10)
	padLines := strings.Count(pad, "\n")
	utf16le, err := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewEncoder().String("phone;nome\r\n11987654321;João\r\n")
	if err != nil {
		t.Fatal(err)
	}
	utf16be, err := unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM).NewEncoder().String("phone;nome\n11987654321;Zé\n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		data  string
		opts  ImportOptions
		last  want // the last row
		count int
	}{
		{"UTF-16LE with BOM", utf16le, ImportOptions{DefaultCountry: "BR"}, want{line: 2, phone: "+5511987654321", name: "João"}, 1},
		{"UTF-16BE by charset", utf16be, ImportOptions{DefaultCountry: "BR", Charset: "UTF-16BE"}, want{line: 2, phone: "+5511987654321", name: "Zé"}, 1},
		{"ASCII beyond the sniff window, then Windows-1252", pad + "21987654321,Jo\xe3o\n", ImportOptions{DefaultCountry: "BR"},
			want{line: padLines + 1, phone: "+5521987654321", name: "João"}, padLines},
		{"UTF-8 early, a Windows-1252 row later", "phone,name\n11900000000,José\n" + pad[len("phone,name\n"):] + "21987654321,Jo\xe3o\n", ImportOptions{DefaultCountry: "BR"},
			want{line: padLines + 2, phone: "+5521987654321", name: "João"}, padLines + 1},
		{"Windows-1252 early, a UTF-8 row later", "phone,name\n11900000000,Jos\xe9\n" + pad[len("phone,name\n"):] + "21987654321,José\n", ImportOptions{DefaultCountry: "BR"},
			want{line: padLines + 2, phone: "+5521987654321", name: "José"}, padLines + 1},
		{"charset windows-1252, a UTF-8 row", "phone,name\n21987654321,José\n", ImportOptions{DefaultCountry: "BR", Charset: "windows-1252"},
			want{line: 2, reason: RejectMixedEncoding}, 1},
		{"charset utf-8 forces UTF-8", "phone,name\n21987654321,Jo\xe3o\n", ImportOptions{DefaultCountry: "BR", Charset: "utf-8"},
			want{line: 2, reason: RejectBadEncoding}, 1},
		{"iso-8859-1 charset", "phone,name\n21987654321,Jo\xe3o\n", ImportOptions{DefaultCountry: "BR", Charset: "ISO-8859-1"},
			want{line: 2, phone: "+5521987654321", name: "João"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rows := importAll(t, []byte(tt.data), tt.opts)
			if len(rows) != tt.count {
				t.Fatalf("got %d rows, want %d", len(rows), tt.count)
			}
			checkRows(t, rows[len(rows)-1:], []want{tt.last})
		})
	}
}

// TestImportReaderMixedEncodings: rows of UTF-8 and Windows-1252 in one file, in
// either order, are each read in their own encoding: every name as written, none
// garbled ("JosÃ©"), none rejected.
func TestImportReaderMixedEncodings(t *testing.T) {
	utf8Rows := "11987650001,José\n11987650002,Conceição\n"
	cp1252Rows := "11987650003,Jos\xe9\n11987650004,Concei\xe7\xe3o\n"
	wants := map[string]string{"+5511987650001": "José", "+5511987650002": "Conceição",
		"+5511987650003": "José", "+5511987650004": "Conceição"}
	for name, data := range map[string]string{
		"UTF-8 first":        "phone,name\n" + utf8Rows + cp1252Rows,
		"Windows-1252 first": "phone,name\n" + cp1252Rows + utf8Rows,
		"interleaved":        "phone,name\n11987650001,José\n11987650003,Jos\xe9\n11987650002,Conceição\n11987650004,Concei\xe7\xe3o\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rows := importAll(t, []byte(data), ImportOptions{DefaultCountry: "BR"})
			if len(rows) != len(wants) {
				t.Fatalf("got %d rows, want %d", len(rows), len(wants))
			}
			for _, r := range rows {
				if r.Reject != nil {
					t.Errorf("line %d rejected: %+v", r.Line, r.Reject)
					continue
				}
				if want := wants[r.Contact.Phone]; r.Contact.Name != want {
					t.Errorf("line %d: name %q, want %q", r.Line, r.Contact.Name, want)
				}
			}
		})
	}
}

func TestNewImportReaderErrors(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		opts    ImportOptions
		want    error
		message string // a part of the message, when not ""
	}{
		{"empty file", "", ImportOptions{DefaultCountry: "BR"}, ErrNoHeader, ""},
		{"blank lines only", "\n \r\n;;\n", ImportOptions{DefaultCountry: "BR"}, ErrNoHeader, ""},
		{"BOM only", "\xef\xbb\xbf", ImportOptions{DefaultCountry: "BR"}, ErrNoHeader, ""},
		{"no phone column", "name,email\nAna,a@b\n", ImportOptions{DefaultCountry: "BR"}, ErrNoPhoneColumn, ""},
		{"data without a header", "11987654321,Ana\n", ImportOptions{DefaultCountry: "BR"}, ErrNoPhoneColumn, "looks like data"},
		{"two phone columns", "telefone,celular\n1,2\n", ImportOptions{DefaultCountry: "BR"}, ErrDuplicateColumn, "telefone"},
		{"two name columns", "phone,Nome,NOME\n", ImportOptions{DefaultCountry: "BR"}, ErrDuplicateColumn, ""},
		{"same attribute twice", "phone,email,Email \n", ImportOptions{DefaultCountry: "BR"}, ErrDuplicateColumn, ""},
		{"too many columns", "phone,a,b,c\n", ImportOptions{DefaultCountry: "BR", MaxColumns: 3}, ErrTooManyColumns, ""},
		{"unclosed quote in header", "phone,\"name\n1,2\n", ImportOptions{DefaultCountry: "BR"}, ErrBadHeader, ""},
		{"header cell too long", "phone," + strings.Repeat("n", 20) + "\n", ImportOptions{DefaultCountry: "BR", MaxFieldBytes: 10}, ErrBadHeader, ""},
		{"header not UTF-8", "phone,n\xe3o\n", ImportOptions{DefaultCountry: "BR", Charset: "utf-8"}, ErrBadHeader, ""},
		{"unsupported charset", "phone\n", ImportOptions{DefaultCountry: "BR", Charset: "shift_jis"}, ErrUnsupportedEncoding, ""},
		{"unknown country", "phone\n", ImportOptions{DefaultCountry: "XX"}, ErrUnknownCountry, ""},
		{"bad delimiter", "phone\n", ImportOptions{DefaultCountry: "BR", Delimiter: 'x'}, ErrBadOptions, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewImportReader(strings.NewReader(tt.data), tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("message %q lacks %q", err, tt.message)
			}
		})
	}
}

// failingReader yields data, then fails.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestImportReaderIOError(t *testing.T) {
	boom := errors.New("connection reset")
	data := []byte("phone\n11987654321\n1198765")
	for _, charset := range []string{"", "utf-8"} {
		t.Run("charset "+charset, func(t *testing.T) {
			ir, err := NewImportReader(&failingReader{data: data, err: boom}, ImportOptions{DefaultCountry: "BR", Charset: charset})
			if err != nil {
				t.Fatal(err)
			}
			row, err := ir.Next()
			if err != nil || row.Contact.Phone != "+5511987654321" {
				t.Fatalf("first row: %+v, %v", row, err)
			}
			for range 2 { // the error sticks
				if _, err := ir.Next(); !errors.Is(err, boom) {
					t.Fatalf("got %v, want %v", err, boom)
				}
			}
		})
	}
}

func TestImportReaderLongLine(t *testing.T) {
	opts := ImportOptions{DefaultCountry: "BR", MaxColumns: 2, MaxFieldBytes: 16}
	data := "phone,name\n" + strings.Repeat("x", 200_000) + "\n11987654321,A\n\"" + strings.Repeat("y\n", 100) + "\"\n11987654322,B\n"
	rows := importAll(t, []byte(data), opts)
	if len(rows) < 4 {
		t.Fatalf("got %d rows", len(rows))
	}
	checkRows(t, rows[:3], []want{
		{line: 2, reason: RejectFieldTooLong},
		{line: 3, phone: "+5511987654321"},
		{line: 4, reason: RejectMalformedRow},
	})
	checkRows(t, rows[len(rows)-2:], []want{{line: 104, reason: RejectMalformedRow}, {line: 105, phone: "+5511987654322"}})
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		raw, country, want string
		err                error
	}{
		{"(11) 98765-4321", "BR", "+5511987654321", nil},
		{"011 98765-4321", "BR", "+5511987654321", nil},
		{"0 15 11 98765-4321", "BR", "+5511987654321", nil},
		{"0xx11 98765-4321", "BR", "+5511987654321", nil},
		{"0xx21 3234-5678", "BR", "+552132345678", nil},
		{"+55 11 98765-4321", "BR", "+5511987654321", nil},
		{"5511987654321", "BR", "+5511987654321", nil},
		{"11987654321", "BR", "+5511987654321", nil},
		{"11.98765.4321", "BR", "+5511987654321", nil},
		{"(92) 3234-5678", "BR", "+559232345678", nil},
		{"55 98765-4321", "BR", "+5555987654321", nil}, // DDD 55 (Santa Maria), not the country code
		{"0800 123 4567", "br", "+558001234567", nil},
		{"+1 (212) 555-0100", "BR", "+12125550100", nil},
		{"212-555-0100", "US", "+12125550100", nil},
		{"98765-4321", "BR", "", ErrInvalidNumber},   // no area code
		{"11 8765-4321", "BR", "", ErrInvalidNumber}, // mobile without the 9
		{"abc", "BR", "", ErrInvalidNumber},
		// Letters are not a keypad: a typo must not dial someone else.
		{"(62) 9ABCD-1234", "BR", "", ErrInvalidNumber},
		{"1-800-FLOWERS", "US", "", ErrInvalidNumber},
		{"11 98765-4321 ramal 2", "BR", "", ErrInvalidNumber},
		{"0XX11 98765-4321", "BR", "+5511987654321", nil},
		{"  ", "BR", "", ErrEmptyNumber},
		{"11987654321", "ZZ", "", ErrUnknownCountry},
	}
	for _, tt := range tests {
		t.Run(tt.raw+"/"+tt.country, func(t *testing.T) {
			got, err := NormalizePhone(tt.raw, tt.country)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("NormalizePhone(%q, %q) = %q, %v; want %q, %v", tt.raw, tt.country, got, err, tt.want, tt.err)
			}
		})
	}
}

// libraryNormalize is the reference: phonenumbers alone, plus the documented
// retry with "+".
func libraryNormalize(raw, region string) string {
	s := strings.TrimSpace(raw)
	for _, cand := range []string{s, "+" + s} {
		num, err := phonenumbers.Parse(cand, region)
		if err == nil && phonenumbers.IsValidNumber(num) {
			return phonenumbers.Format(num, phonenumbers.E164)
		}
		if strings.HasPrefix(s, "+") || !strings.HasPrefix(digitsOnly(s), "55") {
			break
		}
	}
	return ""
}

func TestPhoneFastPathMatchesLibrary(t *testing.T) {
	n, err := NewPhoneNormalizer("BR")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789012345678901234567890123456789 -.()+"
	cases := 20000
	if testing.Short() {
		cases = 2000
	}
	fast := 0
	for range cases {
		var b []byte
		switch rng.IntN(5) {
		case 0: // anything from the alphabet
			for range 6 + rng.IntN(14) {
				b = append(b, alphabet[rng.IntN(len(alphabet))])
			}
		case 1: // plausible national numbers
			b = fmt.Appendf(nil, "%02d%d%08d", 10+rng.IntN(90), rng.IntN(10), rng.IntN(100_000_000))
		case 2: // plausible international numbers
			b = fmt.Appendf(nil, "+55 %02d 9%04d-%04d", 10+rng.IntN(90), rng.IntN(10000), rng.IntN(10000))
		case 3: // calling code without "+", with and without the mobile 9
			b = fmt.Appendf(nil, "55%02d%d%07d", 10+rng.IntN(90), 1+rng.IntN(9), rng.IntN(100_000_000)/(1+rng.IntN(10)))
		default: // trunk prefix, sometimes with a carrier code or "90"
			b = fmt.Appendf(nil, "%s%02d %d%04d-%04d", []string{"0", "0", "0", "00", "015", "90", "0 41 "}[rng.IntN(7)],
				rng.IntN(100), rng.IntN(10), rng.IntN(10000), rng.IntN(10000))
		}
		raw := string(b)
		if _, _, ok := n.fastPath(strings.TrimSpace(raw)); ok {
			fast++
		}
		got, _ := n.Normalize(raw)
		if want := libraryNormalize(raw, "BR"); got != want {
			t.Errorf("Normalize(%q) = %q, library says %q", raw, got, want)
		}
	}
	if fast < cases/3 {
		t.Errorf("fast path taken %d times of %d: the test does not exercise it", fast, cases)
	}
}

func TestFastPathRulesMatchLibraryMetadata(t *testing.T) {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range coll.GetMetadata() {
		rule, ok := fastPathRules[m.GetId()]
		if !ok {
			continue
		}
		found++
		if got, want := rule.nationalPrefixForParsing.String(), "^(?:"+m.GetNationalPrefixForParsing()+")"; got != want {
			t.Errorf("%s national prefix for parsing: table %q, library %q", m.GetId(), got, want)
		}
		if got, want := rule.internationalPrefix.String(), "^(?:"+m.GetInternationalPrefix()+")"; got != want {
			t.Errorf("%s international prefix: table %q, library %q", m.GetId(), got, want)
		}
		if got, want := rule.generalDesc.String(), "^(?:"+m.GetGeneralDesc().GetNationalNumberPattern()+")$"; got != want {
			t.Errorf("%s general description: table %q, library %q", m.GetId(), got, want)
		}
		cc := strconv.Itoa(int(m.GetCountryCode()))
		plusOK := true
		for i := 1; i < len(cc); i++ {
			if phonenumbers.GetRegionCodeForCountryCode(mustAtoi(t, cc[:i])) != "ZZ" {
				plusOK = false
			}
		}
		if rule.plusOK != plusOK {
			t.Errorf("%s plusOK: table %v, library %v", m.GetId(), rule.plusOK, plusOK)
		}
	}
	if found != len(fastPathRules) {
		t.Errorf("found %d of %d regions in the library's metadata", found, len(fastPathRules))
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTimezoneForNumber(t *testing.T) {
	tests := []struct{ e164, want string }{
		{"+5511987654321", "America/Sao_Paulo"},
		{"+5592987654321", "America/Manaus"},
		{"+5581987654321", ""},              // Recife or Fernando de Noronha: ambiguous
		{"+5591987654321", "America/Belem"}, // the library says America/Manaus
		{"+5568999876543", "America/Rio_Branco"},
		{"+558001234567", "America/Sao_Paulo"}, // toll free: the library's answer
		{"+12125550100", "America/New_York"},
		{"+442079460958", "Europe/London"},
		{"+999", ""},
	}
	for _, tt := range tests {
		if got := TimezoneForNumber(tt.e164); got != tt.want {
			t.Errorf("TimezoneForNumber(%q) = %q, want %q", tt.e164, got, tt.want)
		}
	}
	for ddd, zone := range brazilZoneByDDD {
		if _, err := time.LoadLocation(zone); err != nil {
			t.Errorf("DDD %s: %v", ddd, err)
		}
		if _, err := NormalizePhone(ddd+"987654321", "BR"); err != nil {
			t.Errorf("DDD %s is not a valid area code for the library: %v", ddd, err)
		}
	}
	if len(brazilZoneByDDD) != 67 {
		t.Errorf("%d DDDs, Brazil has 67", len(brazilZoneByDDD))
	}
}

// benchCSV builds n distinct Brazilian rows. Mixed rows rotate through the four
// formats of scripts/gencsv (the HTTP import benchmark): "(11) 96000-0000",
// "+55 11 96000-0001", "5511960000002", "011 96000-0003"; clean rows are bare
// national digits.
func benchCSV(n int, clean bool) []byte {
	ddds := make([]string, 0, len(brazilZoneByDDD))
	for d := range brazilZoneByDDD {
		ddds = append(ddds, d)
	}
	slices.Sort(ddds) // map order is random: keep the benchmark stable
	var b bytes.Buffer
	b.WriteString("nome;telefone;plano;valor\r\n")
	names := []string{"Ana Souza", "João Silva", "Maria Oliveira", "José Santos", "Conceição Lima", "Antônio Costa"}
	for i := range n {
		ddd := ddds[i%len(ddds)]
		sub := 960_000_000 + i/len(ddds)
		p1, p2 := sub/10000, sub%10000
		fmt.Fprintf(&b, "%s;", names[i%len(names)])
		switch {
		case clean:
			fmt.Fprintf(&b, "%s%09d", ddd, sub)
		case i%4 == 0:
			fmt.Fprintf(&b, "(%s) %05d-%04d", ddd, p1, p2)
		case i%4 == 1:
			fmt.Fprintf(&b, "+55 %s %05d-%04d", ddd, p1, p2)
		case i%4 == 2:
			fmt.Fprintf(&b, "55%s%09d", ddd, sub)
		default:
			fmt.Fprintf(&b, "0%s %05d-%04d", ddd, p1, p2)
		}
		fmt.Fprintf(&b, ";Plano %d;\"%d,90\"\r\n", i%5, 79+i%5*20)
	}
	return b.Bytes()
}

// BenchmarkImportReader measures the parser alone, single-threaded, over
// generated Brazilian rows (see benchCSV) and reports rows/s.
func BenchmarkImportReader(b *testing.B) {
	const rows = 100_000
	for _, bc := range []struct {
		name  string
		clean bool
	}{{"mixed", false}, {"clean", true}} {
		data := benchCSV(rows, bc.clean)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				ir, err := NewImportReader(bytes.NewReader(data), ImportOptions{DefaultCountry: "BR"})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					row, err := ir.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil || row.Reject != nil {
						b.Fatalf("row %d: %v %+v", n, err, row.Reject)
					}
					n++
				}
				if n != rows {
					b.Fatalf("%d rows, want %d", n, rows)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// A rejection carries the row as the spreadsheet had it and the cell at fault,
// so the person fixing it finds the row and a page can say what is wrong in its
// own language.
func TestImportRejectionsKeepTheRow(t *testing.T) {
	data := "Telefone;Nome;Plano;fuso\n" +
		"(62) 9ABCD-1234;Ana;ouro;\n" + // letters
		"11987654321;Bia;prata;\n" +
		"11 98765-4321;Caio;;\n" + // duplicate
		"11987654322;Duda;ouro;Nowhere/City\n" +
		"\"11987654323;Jo\xe3o;x;\n" // malformed (stray quote), Windows-1252
	ir, err := NewImportReader(strings.NewReader(data), ImportOptions{DefaultCountry: "BR"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ir.Header(), []string{"Telefone", "Nome", "Plano", "fuso"}; !slices.Equal(got, want) {
		t.Errorf("Header() = %q, want %q", got, want)
	}
	rows := importAll(t, []byte(data), ImportOptions{DefaultCountry: "BR"})
	tests := []struct {
		line   int
		reason RejectReason
		value  string
		cells  []string
	}{
		{2, RejectInvalidNumber, "(62) 9ABCD-1234", []string{"(62) 9ABCD-1234", "Ana", "ouro", ""}},
		{4, RejectDuplicateInFile, "+5511987654321", []string{"11 98765-4321", "Caio", "", ""}},
		{5, RejectInvalidTimezone, "Nowhere/City", []string{"11987654322", "Duda", "ouro", "Nowhere/City"}},
	}
	byLine := map[int]ImportRow{}
	for _, r := range rows {
		byLine[r.Line] = r
	}
	for _, tt := range tests {
		r := byLine[tt.line].Reject
		if r == nil {
			t.Errorf("line %d not rejected", tt.line)
			continue
		}
		if r.Reason != tt.reason || r.Value != tt.value || !slices.Equal(r.Cells, tt.cells) {
			t.Errorf("line %d: %s value %q cells %q; want %s value %q cells %q", tt.line, r.Reason, r.Value, r.Cells, tt.reason, tt.value, tt.cells)
		}
	}
	if ok := byLine[3]; ok.Reject != nil || !slices.Equal(ok.Cells, []string{"11987654321", "Bia", "prata", ""}) {
		t.Errorf("imported line 3: reject %+v cells %q", ok.Reject, ok.Cells)
	}
	if bad := byLine[6].Reject; bad == nil || bad.Reason != RejectMalformedRow {
		t.Errorf("malformed line 6: %+v", bad)
	}
	// A row not valid in the declared encoding still shows, as valid text.
	rows = importAll(t, []byte("phone,name\n11987654321,Jo\xe3o\n"), ImportOptions{DefaultCountry: "BR", Charset: "utf-8"})
	if bad := rows[0].Reject; bad == nil || bad.Reason != RejectBadEncoding || len(bad.Cells) != 2 || bad.Cells[0] != "11987654321" || !utf8.ValidString(bad.Cells[1]) {
		t.Errorf("bad encoding row: %+v", bad)
	}
}
