package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/turbina-dialer/turbina/campaigns"
	"github.com/turbina-dialer/turbina/storage"
)

// flexID is an object ID that clients may send as a JSON string ("12") or number (12).
type flexID int64

func (f *flexID) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("id must be a string or number")
		}
		n = json.Number(s)
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || v <= 0 {
		return fmt.Errorf("id %q is not valid", n)
	}
	*f = flexID(v)
	return nil
}

type dncRejection struct {
	Phone  string                 `json:"phone,omitempty"`
	Line   int                    `json:"line,omitempty"`
	Reason campaigns.RejectReason `json:"reason"`
}

// dncScope resolves the list a request addresses: a campaign's, or the global one (0),
// and the country used to read numbers written without a country code.
func (s *Server) dncScope(r *http.Request, p principal, campaignID int64) (country string, err error) {
	if campaignID == 0 {
		c := r.URL.Query().Get("country")
		if c == "" {
			return campaigns.DefaultCountry, nil
		}
		c = strings.ToUpper(c)
		// Checked here: the CSV reader would refuse it as an internal error, and
		// the JSON path would reject every number as invalid instead.
		if _, err := campaigns.NewPhoneNormalizer(c); err != nil {
			return "", badRequest(fmt.Sprintf("query parameter country: %q is not a supported region code", c))
		}
		return c, nil
	}
	c, err := s.campaignFor(r.Context(), p, campaignID)
	if err != nil {
		if ae := toAPIError(err); ae.Status == http.StatusNotFound {
			return "", unprocessable(fmt.Sprintf("campaign %d does not exist", campaignID))
		}
		return "", err
	}
	return c.DefaultCountry, nil
}

// addDNC takes numbers as JSON ({"phones":[…],"campaign_id":"…"}) or as a CSV file
// with a phone column (campaign_id then in the query).
func (s *Server) addDNC(w http.ResponseWriter, r *http.Request, p principal) error {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || r.Header.Get("Content-Type") == "" {
		return s.addDNCJSON(w, r, p)
	}
	campaignID, err := queryID(r, "campaign_id")
	if err != nil {
		return err
	}
	country, err := s.dncScope(r, p, campaignID)
	if err != nil {
		return err
	}
	r, charset, err := s.csvBody(w, r)
	if err != nil {
		return err
	}
	ir, err := campaigns.NewImportReader(r.Body, campaigns.ImportOptions{DefaultCountry: country, Charset: charset})
	if err != nil {
		return importError(err)
	}
	added := 0
	rejected := []dncRejection{}
	var phones []string
	flush := func() error {
		n, err := s.store.AddDNC(r.Context(), p.actor(), campaignID, phones, r.URL.Query().Get("reason"))
		if err == nil {
			s.stopRinging(r.Context(), campaignID, phones)
		}
		added += n
		phones = phones[:0]
		return err
	}
	for {
		row, err := ir.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return importError(err)
		}
		if row.Reject != nil {
			if row.Reject.Reason != campaigns.RejectDuplicateInFile {
				rejected = append(rejected, dncRejection{Line: row.Line, Reason: row.Reject.Reason})
			}
			continue
		}
		if phones = append(phones, row.Contact.Phone); len(phones) == campaigns.DefaultBatchRows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"added": added, "rejected": rejected})
	return nil
}

func (s *Server) addDNCJSON(w http.ResponseWriter, r *http.Request, p principal) error {
	var in struct {
		Phones     []string `json:"phones"`
		CampaignID *flexID  `json:"campaign_id"`
		Reason     string   `json:"reason"`
	}
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if len(in.Phones) == 0 {
		return unprocessable("phones: at least one number is required")
	}
	if len(in.Phones) > 10000 {
		return unprocessable("phones: at most 10000 numbers per request; upload a CSV file for more")
	}
	var campaignID int64
	if in.CampaignID != nil {
		campaignID = int64(*in.CampaignID)
	}
	country, err := s.dncScope(r, p, campaignID)
	if err != nil {
		return err
	}
	var phones []string
	rejected := []dncRejection{}
	for _, raw := range in.Phones {
		e164, err := campaigns.NormalizePhone(raw, country)
		if err != nil {
			rejected = append(rejected, dncRejection{Phone: raw, Reason: campaigns.RejectInvalidNumber})
			continue
		}
		phones = append(phones, e164)
	}
	added := 0
	if len(phones) > 0 {
		if added, err = s.store.AddDNC(r.Context(), p.actor(), campaignID, phones, in.Reason); err != nil {
			return err
		}
		s.stopRinging(r.Context(), campaignID, phones)
	}
	writeJSON(w, http.StatusOK, map[string]any{"added": added, "rejected": rejected})
	return nil
}

func (s *Server) listDNC(w http.ResponseWriter, r *http.Request, p principal) error {
	campaignID, err := queryID(r, "campaign_id")
	if err != nil {
		return err
	}
	if _, err := s.dncScope(r, p, campaignID); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 100)
	if err != nil {
		return err
	}
	offset, err := queryInt(r, "offset", 0)
	if err != nil {
		return err
	}
	// A search is by the digits typed, however they were written.
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, r.URL.Query().Get("search"))
	list, total, err := s.store.ListDNC(r.Context(), campaignID, digits, limit, offset)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": list, "total": total})
	return nil
}

func (s *Server) removeDNC(w http.ResponseWriter, r *http.Request, p principal) error {
	campaignID, err := queryID(r, "campaign_id")
	if err != nil {
		return err
	}
	country, err := s.dncScope(r, p, campaignID)
	if err != nil {
		return err
	}
	phone, err := campaigns.NormalizePhone(r.PathValue("phone"), country)
	if err != nil {
		return notFound(fmt.Sprintf("%q is not a phone number", r.PathValue("phone")))
	}
	reason := strings.TrimSpace(r.URL.Query().Get("reason"))
	if len(reason) > 500 {
		return unprocessable("reason: at most 500 characters")
	}
	if err := s.store.RemoveDNC(r.Context(), p.actor(), campaignID, phone, reason); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stopRinging has the engine end the calls still ringing to numbers just put on a
// list, so that the list takes effect at once and not at the next dial.
func (s *Server) stopRinging(ctx context.Context, campaignID int64, phones []string) {
	if len(phones) == 0 {
		return
	}
	if s.cfg.Engine != nil {
		s.cfg.Engine.StopRinging(ctx, campaignID, phones)
	}
	// The other nodes' calls too (RunCluster does it there). Should the command
	// be lost, their calls still end at their ring timeout, and the policy gate
	// keeps the numbers from being dialled again.
	if _, ok := s.ui.wall.cluster.sharing(); ok {
		cmd := storage.StopRingingCommand{CampaignID: campaignID, Numbers: slices.Clone(phones)}
		if err := s.store.RecordCommand(ctx, storage.CommandStopRinging, cmd); err != nil {
			s.log.Warn("cluster: the other nodes' calls to numbers put on a do-not-call list not stopped", "err", err)
		}
	}
}
