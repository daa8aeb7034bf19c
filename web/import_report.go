package web

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/turbina-dialer/turbina/campaigns"
)

// rejectionWords are the rejection report's words in each language the pages
// speak: the CSV is opened in a spreadsheet, where no page can translate it. The
// pages' own dictionaries (web/ui/static/i18n/sales.*.js) say the same.
var rejectionWords = map[string]struct {
	line, reason, code string
	reasons            map[campaigns.RejectReason]string
}{
	"en": {"line", "reason", "reason code", map[campaigns.RejectReason]string{
		campaigns.RejectMissingPhone:      "no phone number",
		campaigns.RejectInvalidNumber:     "not a valid phone number",
		campaigns.RejectInvalidWhatsApp:   "not a valid WhatsApp number",
		campaigns.RejectInvalidTimezone:   "unknown time zone",
		campaigns.RejectInvalidConsent:    "consent not understood (use yes/no or a date)",
		campaigns.RejectInvalidRegion:     "state or postal code not understood",
		campaigns.RejectDuplicateInFile:   "number already on an earlier line of the file",
		campaigns.RejectAlreadyInCampaign: "number already in the campaign",
		campaigns.RejectDoNotCall:         "number on the do-not-call list",
		campaigns.RejectBadEncoding:       "characters that cannot be read (save the file as UTF-8)",
		campaigns.RejectMixedEncoding:     "line in another encoding than the file (save the file as UTF-8)",
		campaigns.RejectTooManyColumns:    "more cells than the header has columns",
		campaigns.RejectMalformedRow:      "quotes not closed: the line could not be read",
		campaigns.RejectFieldTooLong:      "a cell is too long",
	}},
	"pt-BR": {"linha", "motivo", "código do motivo", map[campaigns.RejectReason]string{
		campaigns.RejectMissingPhone:      "sem telefone",
		campaigns.RejectInvalidNumber:     "telefone inválido",
		campaigns.RejectInvalidWhatsApp:   "WhatsApp inválido",
		campaigns.RejectInvalidTimezone:   "fuso horário desconhecido",
		campaigns.RejectInvalidConsent:    "consentimento não entendido (use sim/não ou uma data)",
		campaigns.RejectInvalidRegion:     "UF ou CEP não entendido",
		campaigns.RejectDuplicateInFile:   "telefone repetido numa linha anterior do arquivo",
		campaigns.RejectAlreadyInCampaign: "telefone já está na campanha",
		campaigns.RejectDoNotCall:         "telefone na lista de não ligar",
		campaigns.RejectBadEncoding:       "caracteres ilegíveis (salve o arquivo em UTF-8)",
		campaigns.RejectMixedEncoding:     "linha em outra codificação que o arquivo (salve o arquivo em UTF-8)",
		campaigns.RejectTooManyColumns:    "mais células que colunas no cabeçalho",
		campaigns.RejectMalformedRow:      "aspas não fechadas: a linha não pôde ser lida",
		campaigns.RejectFieldTooLong:      "célula longa demais",
	}},
}

// reportLanguage is the language of a CSV for people: the lang query parameter
// the page sends, else the browser's first choice between the two.
func reportLanguage(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l != "" {
		if strings.HasPrefix(strings.ToLower(l), "pt") {
			return "pt-BR"
		}
		return "en"
	}
	for _, l := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		l = strings.ToLower(strings.TrimSpace(l))
		if strings.HasPrefix(l, "pt") {
			return "pt-BR"
		}
		if strings.HasPrefix(l, "en") {
			return "en"
		}
	}
	return "en"
}

// importRejections serves an import's rejected rows as a CSV that opens right in
// a spreadsheet in Brazil: UTF-8 with a byte-order mark (else Excel reads
// Windows-1252), ';' between cells (Excel's separator where ',' is the decimal
// comma), the file's own columns as uploaded and then the line, the reason in
// words and its stable code. Fixed, the rows upload again as they are: the extra
// columns become attributes.
func (s *Server) importRejections(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	im, err := s.store.GetImport(r.Context(), id)
	if err != nil {
		return err
	}
	words := rejectionWords[reportLanguage(r)]
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="import-%d-rejections.csv"`, id))
	bw := bufio.NewWriter(w)
	bw.WriteString("\uFEFF")
	cw := csv.NewWriter(bw)
	cw.Comma = ';'
	cw.UseCRLF = true
	header := make([]string, 0, len(im.Columns)+3)
	for _, c := range im.Columns {
		header = append(header, spreadsheetText(c))
	}
	header = append(header, words.line, words.reason, words.code)
	cw.Write(header)
	err = s.store.ImportRejections(r.Context(), id, func(rej campaigns.Rejection) error {
		row := make([]string, len(header))
		n := len(im.Columns)
		for i, c := range rej.Cells[:min(len(rej.Cells), n)] {
			row[i] = spreadsheetText(c)
		}
		row[n] = strconv.Itoa(rej.Line)
		row[n+1] = words.reasons[rej.Reason]
		if row[n+1] == "" {
			row[n+1] = string(rej.Reason)
		}
		if rej.Value != "" {
			row[n+1] += ": " + rej.Value
		}
		row[n+2] = string(rej.Reason)
		return cw.Write(row)
	})
	cw.Flush()
	if err != nil {
		s.log.Error("stream rejections", "import", id, "err", err)
		return nil
	}
	return bw.Flush()
}

// spreadsheetText keeps an uploaded cell from running as a formula where the
// rejections file is opened: a cell starting with =, +, -, @, tab or CR is a
// formula to Excel and LibreOffice (OWASP's CSV injection), and gets a leading
// "'", which makes the spreadsheet take the rest as text.
//
// Phone numbers written "+5511960000082" get it too, on purpose: read as a
// formula, that phone becomes the number 5.5E+12 and loses its "+" (and a
// "+55 11 9…" is a formula error), so text is also what shows the phone right;
// and telling a phone from "+cmd|' /C calc'!A0" by its looks is a guess an
// attacker gets to probe. The importer reads such a cell back as the same phone:
// the phone-number library skips what comes before the first digit or "+".
func spreadsheetText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
