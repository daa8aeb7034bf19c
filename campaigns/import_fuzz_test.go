package campaigns

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/unicode"
)

// fuzzCharsets are the Charset options the fuzz test picks from.
var fuzzCharsets = []string{"", "utf-8", "windows-1252", "utf-16le"}

// FuzzImportReader feeds arbitrary bytes to the importer and checks that it
// never panics, terminates, and accounts for every line of the file:
//   - NewImportReader fails only with one of its sentinel errors;
//   - every row is exactly one of a contact (E.164 phone, Contact.Line set) or
//     a rejection (with a reason and the row's line);
//   - the rows' line spans [start, end] are disjoint and strictly increasing,
//     each starts on a non-blank line, and every line outside all spans, the
//     header's included, is blank: no non-blank line is silently lost;
//   - no phone is imported twice.
//
// The spans come from the tokenizer (scanner.line/endLine); the line split and
// the blank test are done here independently on the decoded input.
func FuzzImportReader(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "import", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0), uint8(0), uint8(0))
	}
	f.Add([]byte("phone,name\n\"11987654321\",\"a\"\"b\n\nc\"\n\"\n11987654322\n"), uint16(8), uint8(2), uint8(0))
	f.Add([]byte("phone;x\r\n\"\r\n;\"\r\n1;2;3\r\n"), uint16(3), uint8(1), uint8(1))

	f.Fuzz(func(t *testing.T, data []byte, maxField uint16, maxCols uint8, charset uint8) {
		opts := ImportOptions{
			DefaultCountry: "BR",
			Charset:        fuzzCharsets[int(charset)%len(fuzzCharsets)],
			MaxFieldBytes:  int(maxField % 512),
			MaxColumns:     int(maxCols % 16),
		}
		ir, err := NewImportReader(bytes.NewReader(data), opts)
		if err != nil {
			for _, sentinel := range []error{ErrNoHeader, ErrNoPhoneColumn, ErrDuplicateColumn, ErrTooManyColumns, ErrBadHeader} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("NewImportReader: unexpected error %v", err)
		}
		lines := physicalLines(t, data, opts.Charset)
		delim := string(ir.sc.delim)
		// The header's span; lines before it must be blank for any delimiter.
		prevEnd := checkSpan(t, lines, 0, ir.sc.line, ir.sc.endLine, ",;\t|", ir.sc.maxLine)

		seen := map[string]int{}
		for n := 0; ; n++ {
			if n > len(lines) {
				t.Fatalf("more rows (%d) than lines (%d)", n, len(lines))
			}
			row, err := ir.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if row.Reject != nil {
				if row.Reject.Line != row.Line || row.Reject.Reason == "" || row.Contact.Phone != "" {
					t.Fatalf("line %d: bad rejection %+v / %+v", row.Line, *row.Reject, row.Contact)
				}
			} else {
				c := row.Contact
				if c.Line != row.Line || !strings.HasPrefix(c.Phone, "+") || c.Attributes == nil {
					t.Fatalf("line %d: bad contact %+v", row.Line, c)
				}
				if first, dup := seen[c.Phone]; dup {
					t.Fatalf("line %d: %s already imported from line %d", row.Line, c.Phone, first)
				}
				seen[c.Phone] = row.Line
			}
			if row.Line != ir.sc.line {
				t.Fatalf("row line %d, tokenizer says %d", row.Line, ir.sc.line)
			}
			prevEnd = checkSpan(t, lines, prevEnd, ir.sc.line, ir.sc.endLine, delim, ir.sc.maxLine)
		}
		checkSpan(t, lines, prevEnd, len(lines)+1, len(lines)+1, delim, ir.sc.maxLine)
	})
}

// checkSpan checks that the record spanning lines [start, end] comes after
// prevEnd and that the lines between are blank; it returns end. A start past
// the last line checks the tail of the file. Lines longer than maxLine are
// rejected unread, so they count as non-blank.
func checkSpan(t *testing.T, lines [][]byte, prevEnd, start, end int, delims string, maxLine int) int {
	t.Helper()
	if start <= prevEnd || end < start {
		t.Fatalf("span [%d, %d] after line %d", start, end, prevEnd)
	}
	if end > len(lines) && start <= len(lines) {
		t.Fatalf("span [%d, %d] beyond the last line %d", start, end, len(lines))
	}
	for l := prevEnd + 1; l < start && l <= len(lines); l++ {
		if !blankLine(lines[l-1], delims) || len(lines[l-1]) > maxLine {
			t.Fatalf("line %d (%q) is in no row", l, lines[l-1])
		}
	}
	if start <= len(lines) && blankLine(lines[start-1], delims) && len(lines[start-1]) <= maxLine {
		t.Fatalf("row from blank line %d (%q)", start, lines[start-1])
	}
	return end
}

// blankLine is the importer's definition of a blank line, restated.
func blankLine(b []byte, delims string) bool {
	return len(bytes.Trim(b, " \t\r\f\v"+delims)) == 0
}

// physicalLines splits the input, as the importer will see it after any
// UTF-16 decoding, into lines.
func physicalLines(t *testing.T, data []byte, charset string) [][]byte {
	t.Helper()
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		data = data[3:]
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}), bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		data = decodeUTF16(t, data, unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM))
	case charset == "utf-16le":
		data = decodeUTF16(t, data, unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM))
	}
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func decodeUTF16(t *testing.T, data []byte, enc encoding.Encoding) []byte {
	t.Helper()
	out, err := enc.NewDecoder().Bytes(data)
	if err != nil {
		t.Fatalf("decoding UTF-16: %v", err)
	}
	return out
}
