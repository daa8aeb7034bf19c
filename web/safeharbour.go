package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// safeHarbourRoutes are the calls that keep a campaign's safe-harbour message.
func (s *Server) safeHarbourRoutes() []route {
	return []route{
		{"PUT", "/api/v1/campaigns/{id}/safe_harbour", staffRoles, s.putSafeHarbour},
		{"GET", "/api/v1/campaigns/{id}/safe_harbour", staffRoles, s.getSafeHarbour},
		{"DELETE", "/api/v1/campaigns/{id}/safe_harbour", staffRoles, s.deleteSafeHarbour},
	}
}

// maxSafeHarbourBytes bounds an uploaded message: 30 s of 96 kHz stereo 16-bit PCM
// with room to spare; longer recordings are refused by length anyway.
const maxSafeHarbourBytes = 16 << 20

// SafeHarbourInfo describes a campaign's safe-harbour message after an upload.
type SafeHarbourInfo struct {
	// Source is "campaign" (its own message) or "builtin" (the default pt-BR prompt).
	Source    string  `json:"source"`
	Seconds   float64 `json:"seconds"`
	Bytes     int     `json:"bytes"`
	SampleHz  int     `json:"sample_rate"`
	UpdatedAt string  `json:"updated_at,omitempty"`
}

// putSafeHarbour takes a WAV as the body (audio/wav) or as the field "file" of a
// multipart form, converts it to what calls play and stores it with the campaign. A
// file that is not usable audio is refused naming the problem, and the message in
// force stays.
func (s *Server) putSafeHarbour(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	if err := mayChangeCampaign(p, c); err != nil {
		return err
	}
	if r.ContentLength > maxSafeHarbourBytes {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "audio file is larger than the limit of "+formatBytes(maxSafeHarbourBytes))
	}
	asUpload(r)
	r.Body = http.MaxBytesReader(w, r.Body, maxSafeHarbourBytes)
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var body []byte
	switch ct {
	case "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "application/octet-stream":
		if body, err = io.ReadAll(r.Body); err != nil {
			return err
		}
	case "multipart/form-data":
		if params["boundary"] == "" {
			return badRequest("Content-Type: multipart/form-data without a boundary")
		}
		if err := r.ParseMultipartForm(maxSafeHarbourBytes); err != nil {
			if ae := bodyReadError(err); ae != nil {
				return ae
			}
			return badRequest("multipart body: " + err.Error())
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			return safeHarbourRefused("no_file", "file: the form has no field named file")
		}
		defer f.Close()
		if body, err = io.ReadAll(f); err != nil {
			return err
		}
	default:
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("Content-Type %q: send audio/wav, or a multipart form with the file in the field file", ct))
	}
	wav, length, err := media.ConvertPrompt(body)
	var problem *media.PromptProblem
	if errors.As(err, &problem) {
		return safeHarbourRefused(problem.Code, "audio: "+problem.Message)
	}
	if err != nil {
		return err
	}
	if err := s.store.SetSafeHarbour(r.Context(), p.actor(), c.ID, wav, length); err != nil {
		return err
	}
	s.campaignChanged()
	writeJSON(w, http.StatusOK, SafeHarbourInfo{Source: storage.SafeHarbourCampaign, Seconds: length.Seconds(), Bytes: len(wav),
		SampleHz: media.PCMRate, UpdatedAt: s.ui.now().UTC().Format(time.RFC3339)})
	return nil
}

func safeHarbourRefused(reason, msg string) *apiError {
	e := unprocessable(msg)
	e.Fields = map[string]string{"audio": msg}
	e.Reason = reason
	return e
}

// getSafeHarbour downloads the message calls of the campaign play: its own, or the
// built-in prompt (X-Safe-Harbour-Source says which).
func (s *Server) getSafeHarbour(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	source := storage.SafeHarbourCampaign
	sh, err := s.store.GetSafeHarbour(r.Context(), c.ID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		source, sh.WAV = storage.SafeHarbourBuiltin, media.AbandonPromptWAV()
	case err != nil:
		return err
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Content-Length", strconv.Itoa(len(sh.WAV)))
	w.Header().Set("X-Safe-Harbour-Source", source)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="safe-harbour-%d-%s.wav"`, c.ID, source))
	_, err = io.Copy(w, bytes.NewReader(sh.WAV))
	return err
}

// deleteSafeHarbour goes back to the built-in prompt.
func (s *Server) deleteSafeHarbour(w http.ResponseWriter, r *http.Request, p principal) error {
	c, err := s.campaignFromPath(r, p)
	if err != nil {
		return err
	}
	if err := mayChangeCampaign(p, c); err != nil {
		return err
	}
	if err := s.store.DeleteSafeHarbour(r.Context(), p.actor(), c.ID); err != nil {
		return err
	}
	s.campaignChanged()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
