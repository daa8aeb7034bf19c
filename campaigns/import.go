package campaigns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Errors from NewImportReader for a file that cannot be imported at all (the
// HTTP API answers 422). They are wrapped with detail; test with errors.Is.
var (
	// ErrNoHeader: the file is empty or has only blank lines.
	ErrNoHeader = errors.New("no header row")
	// ErrNoPhoneColumn: the header has no phone column (phone, telefone, celular, …).
	ErrNoPhoneColumn = errors.New("no phone column in the header")
	// ErrDuplicateColumn: two header cells name the same column, or the same
	// role (two phone columns of equal standing, say "telefone" and "celular").
	ErrDuplicateColumn = errors.New("duplicate column")
	// ErrTooManyColumns: the header has more than ImportOptions.MaxColumns cells.
	ErrTooManyColumns = errors.New("too many columns")
	// ErrBadHeader: the header row itself is malformed (bad quoting, a cell
	// longer than ImportOptions.MaxFieldBytes, bytes not valid in the encoding).
	ErrBadHeader = errors.New("malformed header row")
	// ErrUnsupportedEncoding: the Charset option names an encoding the import
	// does not read.
	ErrUnsupportedEncoding = errors.New("unsupported character encoding")
	// ErrBadOptions: ImportOptions holds an impossible value.
	ErrBadOptions = errors.New("invalid import options")
)

// Defaults for ImportOptions.
const (
	// DefaultMaxFieldBytes is the default ImportOptions.MaxFieldBytes.
	DefaultMaxFieldBytes = 4096
	// DefaultMaxColumns is the default ImportOptions.MaxColumns.
	DefaultMaxColumns = 200
)

// readBufBytes is the size of the import's read buffers.
const readBufBytes = 64 << 10

// tzCacheSize bounds the cache of time-zone names checked with time.LoadLocation,
// so that a hostile file of distinct names cannot grow it without limit.
const tzCacheSize = 1024

// ImportOptions configures an ImportReader. The zero value reads numbers
// without a country code as invalid; set DefaultCountry.
type ImportOptions struct {
	// DefaultCountry is the ISO 3166-1 alpha-2 region ("BR") numbers without a
	// country calling code belong to.
	DefaultCountry string
	// Charset is the charset parameter of the upload's Content-Type, if any:
	// utf-8, windows-1252 / cp1252, iso-8859-1 / latin1 (read as Windows-1252,
	// as browsers do), utf-16, utf-16le, utf-16be. Empty or us-ascii: sniff.
	// A byte-order mark in the file overrides it.
	Charset string
	// Delimiter forces the field delimiter (',', ';', '\t' or '|'); 0 sniffs it
	// from the header row.
	Delimiter rune
	// MaxFieldBytes is the longest cell accepted, in bytes as in the file
	// (default DefaultMaxFieldBytes); longer ones reject the row with
	// field_too_long.
	MaxFieldBytes int
	// MaxColumns is the most header cells accepted (default DefaultMaxColumns).
	MaxColumns int
}

// ImportRow is one data row of the file: a contact, or the reason it is not one.
type ImportRow struct {
	// Line is the 1-based physical line the row starts on (header = 1).
	Line int
	// Contact is the contact when Reject is nil.
	Contact Contact
	// Reject, when not nil, says why the row is not imported.
	Reject *Rejection
	// Cells are the row's cells as read: what a rejection found later (the
	// number already in the campaign, or on a do-not-call list) reports.
	Cells []string
}

// column roles.
const (
	roleAttr = iota
	rolePhone
	roleName
	roleWhatsApp
	roleTimezone
	nRoles
)

var roleNames = [nRoles]string{"attribute", "phone", "name", "whatsapp", "timezone"}

// headerAlias is a header name's role and standing: when several columns claim
// a role, the one of lowest rank wins and the others stay attributes; two of the
// same lowest rank make the header ambiguous (ErrDuplicateColumn).
type headerAlias struct {
	role int
	rank int
}

// headerAliases maps canonical header names (trimmed, NFC, lower case, spaces
// and hyphens as "_") to roles. "número" is ranked below the other phone
// aliases because Brazilian address columns are also called "Número".
// Immutable.
var headerAliases = map[string]headerAlias{
	"phone": {rolePhone, 0}, "telefone": {rolePhone, 1}, "celular": {rolePhone, 1},
	"fone": {rolePhone, 1}, "phone_number": {rolePhone, 1}, "mobile": {rolePhone, 1},
	"número": {rolePhone, 2}, "numero": {rolePhone, 2},
	"name": {roleName, 0}, "nome": {roleName, 1},
	"whatsapp": {roleWhatsApp, 0}, "wa": {roleWhatsApp, 1}, "whatsapp_number": {roleWhatsApp, 1},
	"timezone": {roleTimezone, 0}, "tz": {roleTimezone, 1}, "fuso": {roleTimezone, 1},
	"time_zone": {roleTimezone, 1}, "fuso_horário": {roleTimezone, 1}, "fuso_horario": {roleTimezone, 1},
}

// textMode is how record bytes become UTF-8.
type textMode int

const (
	modeUTF8    textMode = iota // declared UTF-8 (BOM, charset, UTF-16): invalid rows are bad_encoding
	modeSniffed                 // nothing declared: each row is UTF-8 when valid, else Windows-1252
	modeCP1252                  // declared Windows-1252: a row that reads as UTF-8 is mixed_encoding
)

// ImportReader reads contacts from a CSV stream one row at a time, in memory
// bounded by the limits in ImportOptions plus the set of numbers seen (8 bytes
// and map overhead a number). It is not safe for concurrent use.
type ImportReader struct {
	sc       scanner
	mode     textMode
	encoding string // for messages

	cols    []string // attribute key of each column; "" for role columns and skipped ones
	header  []string // the header's names as written
	culprit string   // the cell the current row's rejection is about
	roleCol [nRoles]int
	// regionCol and postalCol are the attribute columns holding a state/UF and a
	// postal code, or -1.
	regionCol, postalCol int

	phones *PhoneNormalizer
	seen   map[uint64]struct{}
	tzOK   map[string]bool
	dec    []byte // decoded copy of the record in Windows-1252 mode
	decEnd []int
	err    error // sticky
}

// NewImportReader reads the header of the CSV in r and returns a reader of its
// rows. The error, for a file that cannot be imported at all, wraps one of
// ErrNoHeader, ErrNoPhoneColumn, ErrDuplicateColumn, ErrTooManyColumns,
// ErrBadHeader, ErrUnsupportedEncoding, ErrBadOptions or ErrUnknownCountry, or
// is an I/O error of r.
//
// Encoding: a UTF-8 BOM means UTF-8 and a UTF-16 BOM UTF-16; else the Charset
// option; else each row is read in its own: UTF-8 when it is valid UTF-8, else
// Windows-1252 (Brazilian Excel), so a file that mixes the two is read right.
func NewImportReader(r io.Reader, opts ImportOptions) (*ImportReader, error) {
	if opts.MaxFieldBytes == 0 {
		opts.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if opts.MaxColumns == 0 {
		opts.MaxColumns = DefaultMaxColumns
	}
	if opts.MaxFieldBytes < 0 || opts.MaxColumns < 0 {
		return nil, fmt.Errorf("%w: MaxFieldBytes and MaxColumns must not be negative", ErrBadOptions)
	}
	switch opts.Delimiter {
	case 0, ',', ';', '\t', '|':
	default:
		return nil, fmt.Errorf("%w: delimiter %q (want ',', ';', tab or '|')", ErrBadOptions, opts.Delimiter)
	}
	phones, err := NewPhoneNormalizer(opts.DefaultCountry)
	if err != nil {
		return nil, err
	}
	ir := &ImportReader{
		phones: phones,
		seen:   make(map[uint64]struct{}),
		tzOK:   make(map[string]bool),
	}
	br, err := ir.setEncoding(r, opts.Charset)
	if err != nil {
		return nil, err
	}
	// A line may hold MaxColumns full cells, each quoted with its quotes
	// doubled, and delimiters.
	maxLine := opts.MaxColumns*(2*opts.MaxFieldBytes+3) + 2
	ir.sc = scanner{br: br, maxLine: maxLine, maxField: opts.MaxFieldBytes, maxFields: opts.MaxColumns + 1}
	if err := ir.readHeader(byte(opts.Delimiter), opts.MaxColumns); err != nil {
		return nil, err
	}
	return ir, nil
}

// setEncoding decides the file's encoding and returns the reader to tokenize.
func (ir *ImportReader) setEncoding(r io.Reader, charset string) (*bufio.Reader, error) {
	br := bufio.NewReaderSize(r, readBufBytes)
	bom, err := br.Peek(3)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the file: %w", err)
	}
	utf16Reader := func(e unicode.Endianness, b unicode.BOMPolicy, name string) *bufio.Reader {
		ir.mode, ir.encoding = modeUTF8, name
		return bufio.NewReaderSize(transform.NewReader(br, unicode.UTF16(e, b).NewDecoder()), readBufBytes)
	}
	switch {
	case bytes.HasPrefix(bom, []byte{0xEF, 0xBB, 0xBF}):
		_, _ = br.Discard(3) // cannot fail: peeked
		ir.mode, ir.encoding = modeUTF8, "UTF-8"
		return br, nil
	case bytes.HasPrefix(bom, []byte{0xFF, 0xFE}):
		return utf16Reader(unicode.LittleEndian, unicode.ExpectBOM, "UTF-16LE"), nil
	case bytes.HasPrefix(bom, []byte{0xFE, 0xFF}):
		return utf16Reader(unicode.BigEndian, unicode.ExpectBOM, "UTF-16BE"), nil
	}
	switch strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"`)) {
	case "utf-8", "utf8":
		ir.mode, ir.encoding = modeUTF8, "UTF-8"
		return br, nil
	case "windows-1252", "cp1252", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1":
		ir.mode, ir.encoding = modeCP1252, "Windows-1252"
		return br, nil
	case "utf-16", "utf-16le":
		// Without a BOM, UTF-16 is little-endian in practice (Windows).
		return utf16Reader(unicode.LittleEndian, unicode.IgnoreBOM, "UTF-16LE"), nil
	case "utf-16be":
		return utf16Reader(unicode.BigEndian, unicode.IgnoreBOM, "UTF-16BE"), nil
	case "", "us-ascii", "ascii":
	default:
		return nil, fmt.Errorf("%w: charset %q (supported: utf-8, windows-1252, iso-8859-1, utf-16)", ErrUnsupportedEncoding, charset)
	}
	// Nothing declared. Files put together from several sources mix encodings row
	// by row (an Excel export pasted under a UTF-8 one), so each row is read in
	// its own (decode).
	ir.mode = modeSniffed
	return br, nil
}

func hasNonASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// readHeader reads the header row, fixes the delimiter and maps the columns.
func (ir *ImportReader) readHeader(delim byte, maxColumns int) error {
	sc := &ir.sc
	// Skip leading blank lines and find the delimiter from the first other.
	var first physLine
	for {
		ln, err := sc.nextLine()
		if errors.Is(err, io.EOF) {
			return ErrNoHeader
		}
		if err != nil {
			return err
		}
		if ln.tooLong {
			return fmt.Errorf("%w: line %d is longer than %d bytes", ErrBadHeader, ln.no, sc.maxLine)
		}
		if !isBlank(ln.b, ",;\t|") {
			first = physLine{b: bytes.Clone(ln.b), no: ln.no}
			break
		}
	}
	if delim == 0 {
		delim = sniffDelimiter(first.b)
	}
	sc.delim = delim
	sc.unread([]physLine{first})
	if err := sc.readRecord(); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrNoHeader
		}
		return err
	}
	switch {
	case sc.malformed != "":
		return fmt.Errorf("%w: line %d: %s", ErrBadHeader, sc.line, sc.malformed)
	case sc.lineTooLong:
		return fmt.Errorf("%w: line %d is longer than %d bytes", ErrBadHeader, sc.line, sc.maxLine)
	case sc.nfields > maxColumns:
		return fmt.Errorf("%w: the header has %d columns, at most %d are allowed", ErrTooManyColumns, sc.nfields, maxColumns)
	case sc.fieldTooLong:
		return fmt.Errorf("%w: a header cell is longer than %d bytes", ErrBadHeader, sc.maxField)
	}
	if reason, detail := ir.decode(); reason != "" {
		return fmt.Errorf("%w: %s: %s", ErrBadHeader, reason, detail)
	}
	names := make([]string, len(sc.ends))
	for i := range names {
		names[i] = strings.TrimSpace(string(ir.field(i)))
	}
	// Trailing empty header cells are spreadsheet residue: drop them.
	for len(names) > 0 && names[len(names)-1] == "" {
		names = names[:len(names)-1]
	}
	ir.header = names
	return ir.mapColumns(names)
}

// Header returns the header row's column names as written in the file.
func (ir *ImportReader) Header() []string { return slices.Clone(ir.header) }

// cells returns the current record's cells as text, in one allocation for
// their bytes: bytes not valid UTF-8 (a bad_encoding row) are replaced.
func (ir *ImportReader) cells() []string {
	n := len(ir.sc.ends)
	if len(ir.decEnd) > 0 {
		n = len(ir.decEnd)
	}
	var all []byte
	if len(ir.decEnd) > 0 {
		all = ir.dec
	} else {
		all = ir.sc.buf
	}
	text := strings.ToValidUTF8(string(all), "\uFFFD")
	if len(text) != len(all) {
		// Replacement changed the offsets: cut each cell on its own.
		out := make([]string, n)
		for i := range out {
			out[i] = strings.ToValidUTF8(string(ir.field(i)), "\uFFFD")
		}
		return out
	}
	out := make([]string, n)
	start := 0
	for i := range out {
		end := len(ir.field(i)) + start
		out[i] = text[start:end]
		start = end
	}
	return out
}

// mapColumns assigns roles and attribute keys to the header names.
func (ir *ImportReader) mapColumns(names []string) error {
	ir.cols = make([]string, len(names))
	for r := range ir.roleCol {
		ir.roleCol[r] = -1
	}
	bestRank := [nRoles]int{}
	tied := [nRoles]int{}
	canon := make([]string, len(names))
	for i, name := range names {
		canon[i] = canonicalHeader(name)
		a, ok := headerAliases[canon[i]]
		if !ok {
			continue
		}
		switch prev := ir.roleCol[a.role]; {
		case prev < 0 || a.rank < bestRank[a.role]:
			ir.roleCol[a.role], bestRank[a.role], tied[a.role] = i, a.rank, -1
		case a.rank == bestRank[a.role] && tied[a.role] < 0:
			tied[a.role] = i
		}
	}
	for r := rolePhone; r < nRoles; r++ {
		if tied[r] >= 0 && ir.roleCol[r] >= 0 {
			return fmt.Errorf("%w: columns %d (%q) and %d (%q) both name the %s; rename one",
				ErrDuplicateColumn, ir.roleCol[r]+1, names[ir.roleCol[r]], tied[r]+1, names[tied[r]], roleNames[r])
		}
	}
	if ir.roleCol[rolePhone] < 0 {
		hint := ""
		for _, n := range names {
			if _, err := NormalizePhone(n, ir.phones.region); err == nil {
				hint = fmt.Sprintf("; the first line holds the number %q, so it looks like data: add a header row", n)
				break
			}
		}
		return fmt.Errorf("%w: want a column named phone, telefone, celular, fone, mobile, phone_number or número%s", ErrNoPhoneColumn, hint)
	}
	isRole := make([]bool, len(names))
	for r := rolePhone; r < nRoles; r++ {
		if c := ir.roleCol[r]; c >= 0 {
			isRole[c] = true
		}
	}
	keys := make(map[string]int, len(names))
	ir.regionCol, ir.postalCol = -1, -1
	for i, name := range names {
		if isRole[i] {
			continue
		}
		key := name
		if key == "" {
			key = "column_" + strconv.Itoa(i+1)
		}
		k := canonicalHeader(key)
		if j, dup := keys[k]; dup {
			return fmt.Errorf("%w: columns %d (%q) and %d (%q) have the same name", ErrDuplicateColumn, j+1, names[j], i+1, name)
		}
		keys[k] = i
		ir.cols[i] = key
		switch {
		case regionHeaders[k] && ir.regionCol < 0:
			ir.regionCol = i
		case postalHeaders[k] && ir.postalCol < 0:
			ir.postalCol = i
		}
	}
	ir.sc.maxFields = len(names)
	return nil
}

// canonicalHeader is the form header names are compared in.
func canonicalHeader(s string) string {
	s = strings.ToLower(norm.NFC.String(strings.TrimSpace(s)))
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return '_'
		}
		return r
	}, s)
}

// decode makes the current record's stored fields UTF-8, returning a reason
// when they cannot be read without garbling them. A row valid as UTF-8 is UTF-8
// (Windows-1252 text is almost never valid UTF-8, while UTF-8 read as
// Windows-1252 is the familiar "JosÃ©"); any other is Windows-1252 unless the
// upload declared UTF-8.
func (ir *ImportReader) decode() (RejectReason, string) {
	sc := &ir.sc
	ir.decEnd = ir.decEnd[:0]
	if !hasNonASCII(sc.buf) {
		return "", ""
	}
	valid := utf8.Valid(sc.buf)
	switch {
	case ir.mode == modeUTF8 && !valid:
		return RejectBadEncoding, "bytes not valid in " + ir.encoding
	case ir.mode == modeCP1252 && valid:
		return RejectMixedEncoding, "the upload declares Windows-1252, but this row is UTF-8 text; send the file in one encoding, or without a charset"
	case valid:
		return "", ""
	}
	ir.dec = ir.dec[:0]
	prev := 0
	for _, end := range sc.ends {
		for _, c := range sc.buf[prev:end] {
			if c < utf8.RuneSelf {
				ir.dec = append(ir.dec, c)
				continue
			}
			r := charmap.Windows1252.DecodeByte(c)
			if r == utf8.RuneError {
				ir.decEnd = ir.decEnd[:0]
				return RejectBadEncoding, fmt.Sprintf("byte 0x%02X is neither UTF-8 nor a Windows-1252 character", c)
			}
			ir.dec = utf8.AppendRune(ir.dec, r)
		}
		ir.decEnd = append(ir.decEnd, len(ir.dec))
		prev = end
	}
	return "", ""
}

// field returns column i of the current record as UTF-8, or nil.
func (ir *ImportReader) field(i int) []byte {
	if len(ir.decEnd) == 0 {
		return ir.sc.field(i)
	}
	if i < 0 || i >= len(ir.decEnd) {
		return nil
	}
	start := 0
	if i > 0 {
		start = ir.decEnd[i-1]
	}
	return ir.dec[start:ir.decEnd[i]]
}

// Next returns the next data row: a contact, or a rejection with its reason.
// Blank lines are skipped. It returns io.EOF after the last row; any other error
// is an I/O error of the underlying reader, after which the import cannot go on.
func (ir *ImportReader) Next() (ImportRow, error) {
	if ir.err != nil {
		return ImportRow{}, ir.err
	}
	if err := ir.sc.readRecord(); err != nil {
		ir.err = err
		return ImportRow{}, err
	}
	line := ir.sc.line
	ir.culprit = ""
	ir.decEnd = ir.decEnd[:0] // a row rejected before decode must not show the last one's text
	c, reason, detail := ir.contact()
	cells := ir.cells()
	if reason != "" {
		return ImportRow{Line: line, Cells: cells, Reject: &Rejection{Line: line, Reason: reason, Detail: detail, Value: ir.culprit, Cells: cells}}, nil
	}
	c.Line = line
	return ImportRow{Line: line, Contact: c, Cells: cells}, nil
}

// contact turns the current record into a contact, or says why not.
func (ir *ImportReader) contact() (Contact, RejectReason, string) {
	sc := &ir.sc
	switch {
	case sc.malformed != "":
		return Contact{}, RejectMalformedRow, sc.malformed + "; the lines after it are read as rows of their own"
	case sc.lineTooLong:
		return Contact{}, RejectFieldTooLong, fmt.Sprintf("line longer than %d bytes", sc.maxLine)
	case sc.fieldTooLong:
		return Contact{}, RejectFieldTooLong, fmt.Sprintf("a cell is longer than %d bytes", sc.maxField)
	case sc.extraNonEmpty > 0:
		return Contact{}, RejectTooManyColumns, fmt.Sprintf("%d cells, the header has %d", sc.nfields, sc.maxFields)
	}
	if reason, detail := ir.decode(); reason != "" {
		return Contact{}, reason, detail
	}
	phone := bytes.TrimSpace(ir.field(ir.roleCol[rolePhone]))
	if len(phone) == 0 {
		return Contact{}, RejectMissingPhone, ""
	}
	ir.culprit = string(phone)
	e164, key, err := ir.phones.normalize(ir.culprit)
	if err != nil {
		return Contact{}, RejectInvalidNumber, clip(err.Error())
	}
	c := Contact{Phone: e164, Status: ContactPending}
	if wa := bytes.TrimSpace(ir.field(ir.roleCol[roleWhatsApp])); len(wa) > 0 {
		waE164, _, err := ir.phones.normalize(string(wa))
		if err != nil {
			ir.culprit = string(wa)
			return Contact{}, RejectInvalidWhatsApp, clip(err.Error())
		}
		if waE164 != e164 {
			c.WhatsApp = waE164
		}
	}
	if tz := bytes.TrimSpace(ir.field(ir.roleCol[roleTimezone])); len(tz) > 0 {
		name := string(tz)
		if !ir.validZone(name) {
			ir.culprit = name
			return Contact{}, RejectInvalidTimezone, clip(fmt.Sprintf("%q is not an IANA time zone", name))
		}
		c.Timezone = name
		c.Zones = []string{name}
	} else {
		region := bytes.TrimSpace(ir.field(ir.regionCol))
		postal := bytes.TrimSpace(ir.field(ir.postalCol))
		if len(region) > 0 || len(postal) > 0 {
			zs, err := zonesFromColumns(contactCountry(e164, ir.phones.region), string(region), string(postal))
			if err != nil {
				ir.culprit = strings.TrimSpace(string(region) + " " + string(postal))
				return Contact{}, RejectInvalidRegion, clip(err.Error())
			}
			c.Zones = zs
		}
		if len(c.Zones) == 0 {
			c.Zones = ZonesForNumber(e164)
		}
		if len(c.Zones) == 1 {
			c.Timezone = c.Zones[0]
		}
	}
	// Checked last, so the number counts as seen only once a row with it is
	// imported: a rejected row does not make a later good one a duplicate.
	if _, dup := ir.seen[key]; dup {
		ir.culprit = e164
		return Contact{}, RejectDuplicateInFile, e164 + " is on an earlier row"
	}
	ir.seen[key] = struct{}{}
	c.Name = string(bytes.TrimSpace(ir.field(ir.roleCol[roleName])))
	c.Attributes = make(map[string]string)
	for i, k := range ir.cols {
		if k == "" {
			continue
		}
		if v := bytes.TrimSpace(ir.field(i)); len(v) > 0 {
			c.Attributes[k] = string(v)
			if consentHeaders[canonicalHeader(k)] {
				at, given, err := ParseConsent(string(v))
				if err != nil {
					ir.culprit = string(v)
					return Contact{}, RejectInvalidConsent, clip(err.Error())
				}
				if given {
					c.Consent = &at
				}
			}
		}
	}
	return c, "", ""
}

// validZone reports whether name is a loadable IANA zone, caching answers.
// "Local" is refused: the server's zone says nothing about the contact.
func (ir *ImportReader) validZone(name string) bool {
	if ok, hit := ir.tzOK[name]; hit {
		return ok
	}
	_, err := time.LoadLocation(name)
	ok := err == nil && name != "Local"
	if len(ir.tzOK) < tzCacheSize {
		ir.tzOK[name] = ok
	}
	return ok
}

// clip bounds a rejection detail, which may quote a cell of up to MaxFieldBytes.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
