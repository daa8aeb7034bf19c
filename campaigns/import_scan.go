package campaigns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The import has its own CSV tokenizer rather than encoding/csv because it needs
// four things encoding/csv does not give:
//   - the raw bytes of each record, so that each record is decoded and checked
//     for its encoding on its own and one bad row is rejected, not the file;
//   - the physical line a record starts on, including after quoted newlines;
//   - recovery from an unbalanced quote: encoding/csv either stops (strict) or,
//     with LazyQuotes, lets the quote swallow the rest of the file into one
//     field. Here a multi-line record that does not close cleanly is rejected
//     as its first line alone and the lines after it are read again as rows;
//   - hard bounds on memory for hostile input (long lines, long fields, many
//     fields, quoted fields that never close).
//
// Delimiters, quotes, CR and LF are ASCII, and ASCII bytes never occur inside
// a multi-byte character in UTF-8 or in Windows-1252, so splitting the raw bytes
// before decoding is safe for both.

// physLine is one physical line of input, without its "\n".
type physLine struct {
	b       []byte
	no      int  // 1-based line number
	tooLong bool // longer than the line limit; b is empty
}

// scanner splits the input into records.
type scanner struct {
	br      *bufio.Reader
	lineNo  int        // number of the last line read from br
	pending []physLine // lines read ahead and given back, in order, each an owned copy
	long    []byte     // assembly buffer for lines longer than br's buffer
	eof     bool

	delim     byte
	maxLine   int // longest physical line, and largest multi-line record, in bytes
	maxField  int // longest field, in bytes
	maxFields int // fields stored per record; the rest are only checked for content

	// The current record.
	line          int    // physical line it starts on
	endLine       int    // physical line it ends on (its start line if given up)
	buf           []byte // the stored fields' bytes, unescaped, concatenated
	ends          []int  // end offset in buf of each stored field
	nfields       int    // all fields, stored or not
	extraNonEmpty int    // fields beyond maxFields that are not blank
	fieldTooLong  bool
	lineTooLong   bool
	malformed     string     // non-empty: the record was given up; the reason
	span          []physLine // lines after the first, kept until the record is complete
	spanBytes     int
}

// errAbandon is the tokenizer's internal signal that the record is given up.
var errAbandon = errors.New("abandoned record")

// nextLine returns the next physical line. Its bytes are valid until the next
// call unless it came from pending.
func (s *scanner) nextLine() (physLine, error) {
	if len(s.pending) > 0 {
		ln := s.pending[0]
		s.pending = s.pending[1:]
		if len(s.pending) == 0 {
			s.pending = nil
		}
		return ln, nil
	}
	if s.eof {
		return physLine{}, io.EOF
	}
	b, err := s.br.ReadSlice('\n')
	tooLong := false
	if errors.Is(err, bufio.ErrBufferFull) {
		// A line longer than the buffer: assemble it, up to the limit; past
		// the limit only look for its end.
		s.long = append(s.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = s.br.ReadSlice('\n')
			if !tooLong && len(s.long)+len(b) > s.maxLine+1 {
				tooLong = true
				s.long = s.long[:0]
			}
			if !tooLong {
				s.long = append(s.long, b...)
			}
		}
		b = s.long
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		s.eof = true
		if len(b) == 0 && !tooLong {
			return physLine{}, io.EOF
		}
	default:
		return physLine{}, fmt.Errorf("reading line %d: %w", s.lineNo+1, err)
	}
	s.lineNo++
	if tooLong {
		return physLine{no: s.lineNo, tooLong: true}, nil
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if len(b) > s.maxLine {
		return physLine{no: s.lineNo, tooLong: true}, nil
	}
	return physLine{b: b, no: s.lineNo}, nil
}

// unread gives lines back to be read again before anything else.
func (s *scanner) unread(lines []physLine) {
	if len(lines) == 0 {
		return
	}
	p := make([]physLine, 0, len(lines)+len(s.pending))
	p = append(p, lines...)
	s.pending = append(p, s.pending...)
}

// isBlank reports whether a line holds nothing but whitespace and delimiters:
// such lines (Excel leaves ";;;;" rows behind) are skipped without a report.
func isBlank(b []byte, delims string) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v' && strings.IndexByte(delims, c) < 0 {
			return false
		}
	}
	return true
}

func (s *scanner) reset(line int) {
	s.line = line
	s.endLine = line
	s.buf = s.buf[:0]
	s.ends = s.ends[:0]
	s.nfields = 0
	s.extraNonEmpty = 0
	s.fieldTooLong = false
	s.lineTooLong = false
	s.malformed = ""
	for i := range s.span {
		s.span[i] = physLine{}
	}
	s.span = s.span[:0]
	s.spanBytes = 0
}

// readRecord reads the next non-blank record. It returns io.EOF at the end and
// other errors only for failures of the underlying reader. A record the
// tokenizer gave up on has malformed set; one with an over-long line has
// lineTooLong set.
func (s *scanner) readRecord() error {
	for {
		ln, err := s.nextLine()
		if err != nil {
			return err
		}
		if ln.tooLong {
			s.reset(ln.no)
			s.lineTooLong = true
			return nil
		}
		if isBlank(ln.b, string(s.delim)) {
			continue
		}
		s.reset(ln.no)
		err = s.tokenize(ln.b)
		if errors.Is(err, errAbandon) {
			// Only the first line is consumed; the rest is read again.
			s.unread(s.span)
			s.endLine = s.line
			s.span = s.span[:0]
			s.buf = s.buf[:0]
			s.ends = s.ends[:0]
			return nil
		}
		return err
	}
}

// abandon records why the current record is given up.
func (s *scanner) abandon(reason string) error {
	s.malformed = reason
	return errAbandon
}

// continuation reads the next line of a record whose quoted field holds a
// newline, keeping a copy so the line can be read again if the record is
// abandoned.
func (s *scanner) continuation() ([]byte, error) {
	ln, err := s.nextLine()
	if errors.Is(err, io.EOF) {
		return nil, s.abandon("quoted field not closed before the end of the file")
	}
	if err != nil {
		return nil, err
	}
	// Copy even lines that came from pending: unread prepends s.span, and
	// an owned copy keeps that simple at no cost for the normal,
	// single-line record.
	ln.b = bytes.Clone(ln.b)
	s.span = append(s.span, ln)
	s.endLine = ln.no
	s.spanBytes += len(ln.b) + 1
	if ln.tooLong {
		return nil, s.abandon(fmt.Sprintf("quoted field runs into line %d, longer than %d bytes", ln.no, s.maxLine))
	}
	if s.spanBytes > s.maxLine {
		return nil, s.abandon(fmt.Sprintf("quoted fields make the row longer than %d bytes", s.maxLine))
	}
	return ln.b, nil
}

// tokenize splits the record that starts with line b into fields.
//
// Quoting follows RFC 4180 (a field that starts with '"' is quoted, '""' is a
// quote, delimiters and newlines inside are data; CRLF inside becomes LF), with
// leniency where the intent is clear and the damage stays in one line: a quote
// inside an unquoted field is data, and text after a closing quote on a
// one-line record is appended to the field. In a record that spans lines, any
// such irregularity abandons the record instead, because there it usually means
// a stray quote swallowed the following rows.
func (s *scanner) tokenize(b []byte) error {
	pos := 0
	multi := false
	for {
		start := len(s.buf)
		if pos < len(b) && b[pos] == '"' {
			pos++
		quoted:
			for {
				i := bytes.IndexByte(b[pos:], '"')
				if i < 0 {
					s.buf = append(s.buf, trimCR(b[pos:])...)
					s.buf = append(s.buf, '\n')
					if len(s.buf)-start > s.maxField {
						return s.abandon(fmt.Sprintf("quoted field longer than %d bytes or not closed", s.maxField))
					}
					next, err := s.continuation()
					if err != nil {
						return err
					}
					multi = true
					b, pos = next, 0
					continue
				}
				s.buf = append(s.buf, b[pos:pos+i]...)
				pos += i + 1
				switch {
				case pos < len(b) && b[pos] == '"':
					s.buf = append(s.buf, '"')
					pos++
				case pos == len(b) || b[pos] == s.delim || (b[pos] == '\r' && pos == len(b)-1):
					break quoted
				case multi:
					return s.abandon("text after a closing quote")
				default:
					// `"abc"def`: keep going unquoted to the delimiter.
					j := bytes.IndexByte(b[pos:], s.delim)
					if j < 0 {
						s.buf = append(s.buf, trimCR(b[pos:])...)
						pos = len(b)
					} else {
						s.buf = append(s.buf, b[pos:pos+j]...)
						pos += j
					}
					break quoted
				}
			}
		} else {
			j := bytes.IndexByte(b[pos:], s.delim)
			if j < 0 {
				s.buf = append(s.buf, trimCR(b[pos:])...)
				pos = len(b)
			} else {
				s.buf = append(s.buf, b[pos:pos+j]...)
				pos += j
			}
		}
		s.endField(start)
		if pos < len(b) && b[pos] == s.delim {
			pos++
			continue
		}
		if multi && s.nfields > s.maxFields && s.extraNonEmpty > 0 {
			// Too many fields only because of the newline: most likely a
			// stray quote joined rows.
			return s.abandon("quoted field makes the row longer than the header")
		}
		return nil
	}
}

// endField closes the field that started at buf[start].
func (s *scanner) endField(start int) {
	if len(s.buf)-start > s.maxField {
		s.fieldTooLong = true
	}
	if s.nfields < s.maxFields {
		s.ends = append(s.ends, len(s.buf))
	} else {
		if len(bytes.TrimSpace(s.buf[start:])) > 0 {
			s.extraNonEmpty++
		}
		s.buf = s.buf[:start]
	}
	s.nfields++
}

// field returns stored field i of the current record, or nil.
func (s *scanner) field(i int) []byte {
	if i < 0 || i >= len(s.ends) {
		return nil
	}
	start := 0
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.buf[start:s.ends[i]]
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// sniffDelimiter picks the delimiter of a header line: the one of ',', ';' and
// tab found most often outside quotes; ',' when there is none (a one-column
// file) and on ties, then ';'.
func sniffDelimiter(line []byte) byte {
	// Candidates in order of preference when counts tie: a header with no delimiter
	// at all is a one-column file, read as comma-separated.
	candidates := [...]byte{',', ';', '\t', '|'}
	var counts [len(candidates)]int
	inQuote := false
	for _, c := range line {
		if c == '"' {
			inQuote = !inQuote
			continue
		}
		if inQuote {
			continue
		}
		for i, d := range candidates {
			if c == d {
				counts[i]++
			}
		}
	}
	best := 0
	for i := range candidates {
		if counts[i] > counts[best] {
			best = i
		}
	}
	return candidates[best]
}
