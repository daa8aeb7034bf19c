package web

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// csvMediaTypes are the Content-Types spreadsheet exports and tools send for CSV.
var csvMediaTypes = map[string]bool{
	"text/csv": true, "application/csv": true, "text/plain": true,
	"application/vnd.ms-excel": true, "text/comma-separated-values": true,
}

// csvBody checks an upload's type and size and returns its body, limited, and the
// charset the client declared (empty when none).
func (s *Server) csvBody(w http.ResponseWriter, r *http.Request) (*http.Request, string, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !csvMediaTypes[mt] {
		return nil, "", errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "body must be CSV (Content-Type: text/csv)")
	}
	if r.ContentLength > s.cfg.MaxImportBytes {
		return nil, "", errorf(http.StatusRequestEntityTooLarge, "body_too_large",
			"file is larger than the upload limit of "+formatBytes(s.cfg.MaxImportBytes))
	}
	asUpload(r)
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxImportBytes)
	return r, params["charset"], nil
}

// importError maps an error that makes a whole file unreadable.
func importError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, errSlowBody):
		return err
	}
	for _, f := range fileProblems {
		if errors.Is(err, f.err) {
			e := errorf(http.StatusUnprocessableEntity, "invalid_file", err.Error())
			e.Reason = f.code
			return e
		}
	}
	return err
}

// fileProblems are the reasons a whole file cannot be imported, with the code
// each gives an invalid_file error's reason.
var fileProblems = []struct {
	err  error
	code string
}{
	{campaigns.ErrNoHeader, "no_header"},
	{campaigns.ErrNoPhoneColumn, "no_phone_column"},
	{campaigns.ErrDuplicateColumn, "duplicate_column"},
	{campaigns.ErrTooManyColumns, "too_many_columns"},
	{campaigns.ErrBadHeader, "bad_header"},
	{campaigns.ErrUnsupportedEncoding, "unsupported_encoding"},
}

func (s *Server) importContacts(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	if c.State == campaigns.StateFinished {
		return conflict("contacts cannot be added to a finished campaign")
	}
	if c.ArchivedAt != nil {
		return conflict("contacts cannot be added to an archived campaign")
	}
	r, charset, err := s.csvBody(w, r)
	if err != nil {
		return err
	}
	ir, err := campaigns.NewImportReader(r.Body, campaigns.ImportOptions{DefaultCountry: c.DefaultCountry, Charset: charset})
	if err != nil {
		return importError(err)
	}
	batch, err := s.store.BeginImport(r.Context(), p.actor(), c.ID)
	if err != nil {
		return err
	}
	if err := batch.SetColumns(ir.Header()); err != nil {
		return err
	}
	_, loadErr := campaigns.Load(r.Context(), ir, batch, s.cfg.ImportBatchRows)
	im, err := batch.Finish(r.Context(), loadErr)
	if err != nil {
		return err
	}
	s.metrics.importRows.WithLabelValues("imported").Add(float64(im.Imported))
	s.metrics.importRows.WithLabelValues("rejected").Add(float64(im.Rejected))
	if loadErr != nil {
		s.log.Warn("import stopped", "campaign", c.ID, "import", im.ID, "imported", im.Imported, "err", loadErr)
		return importError(loadErr)
	}
	s.log.Info("import done", "campaign", c.ID, "import", im.ID, "imported", im.Imported, "rejected", im.Rejected)
	return s.writeImportReport(w, r, im)
}

// writeImportReport streams the import's result with every rejected row, reading
// the rejections back from storage so a million of them never sit in memory. The
// totals by reason come last, counted on the way.
func (s *Server) writeImportReport(w http.ResponseWriter, r *http.Request, im storage.Import) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	columns, err := json.Marshal(im.Columns)
	if err != nil {
		return err
	}
	fmt.Fprintf(bw, `{"import_id":"%d","state":%q,"imported":%d,"rejected_count":%d,"ambiguous_zones":%d,"columns":%s,"rejected":[`,
		im.ID, im.State, im.Imported, im.Rejected, im.AmbiguousZones, columns)
	first := true
	byReason := map[campaigns.RejectReason]int{}
	err = s.store.ImportRejections(r.Context(), im.ID, func(rej campaigns.Rejection) error {
		if !first {
			bw.WriteByte(',')
		}
		first = false
		byReason[rej.Reason]++
		b, err := json.Marshal(rej)
		if err != nil {
			return err
		}
		_, err = bw.Write(b)
		return err
	})
	if err != nil {
		// Headers are gone: the truncated JSON tells the client something broke.
		s.log.Error("stream import report", "import", im.ID, "err", err)
		return nil
	}
	totals, err := json.Marshal(byReason)
	if err != nil {
		return err
	}
	fmt.Fprintf(bw, `],"by_reason":%s}`+"\n", totals)
	return bw.Flush()
}

func (s *Server) getImport(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	im, err := s.store.GetImport(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, im)
	return nil
}

func (s *Server) listContacts(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	var f storage.ContactFilter
	if f.Limit, err = queryInt(r, "limit", 100); err != nil {
		return err
	}
	if f.Limit > 1000 {
		return badRequest("limit must be at most 1000")
	}
	if f.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	if f.ImportID, err = queryID(r, "import_id"); err != nil {
		return err
	}
	f.Status = campaigns.ContactStatus(r.URL.Query().Get("status"))
	f.Phone = r.URL.Query().Get("phone")
	list, total, err := s.store.ListContacts(r.Context(), c.ID, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"contacts": list, "total": total})
	return nil
}

func (s *Server) getContact(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ct, err := s.store.GetContact(r.Context(), id)
	if err != nil {
		return err
	}
	if _, err := s.campaignFor(r.Context(), p, ct.CampaignID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ct)
	return nil
}

// contactAttempts lists a contact's attempts, oldest first: its history, where a
// WhatsApp call that took up a conversation the trunk dropped names the SIP
// attempt it resumed (resumed_from).
func (s *Server) contactAttempts(w http.ResponseWriter, r *http.Request, p principal) error {
	id, err := s.contactFromPath(r, p)
	if err != nil {
		return err
	}
	as, err := s.store.ListAttempts(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"attempts": as})
	return nil
}
