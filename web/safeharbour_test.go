package web

import (
	"bytes"
	"encoding/binary"
	"math"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/media"
	"github.com/turbina-dialer/turbina/storage"
)

// toneWAV is a 16-bit PCM WAV of a 440 Hz tone, seconds long.
func toneWAV(t *testing.T, rate uint32, channels uint16, seconds float64) []byte {
	t.Helper()
	var data []byte
	for i := range int(float64(rate) * seconds) {
		v := int16(10000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		for range channels {
			data = binary.LittleEndian.AppendUint16(data, uint16(v))
		}
	}
	h := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	h = binary.LittleEndian.AppendUint32(h, 16)
	h = binary.LittleEndian.AppendUint16(h, 1)
	h = binary.LittleEndian.AppendUint16(h, channels)
	h = binary.LittleEndian.AppendUint32(h, rate)
	h = binary.LittleEndian.AppendUint32(h, rate*uint32(channels)*2)
	h = binary.LittleEndian.AppendUint16(h, channels*2)
	h = binary.LittleEndian.AppendUint16(h, 16)
	h = append(h, "data"...)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(data)))
	out := append(h, data...)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

// TestSafeHarbourAPI uploads a campaign's message as a body and as a form, downloads
// it converted, sees bad files refused naming the problem while the message in force
// stays, and goes back to the built-in prompt.
func TestSafeHarbourAPI(t *testing.T) {
	e := newEnv(t, Config{})
	sales := e.tokens[storage.RoleSales]
	c := e.createCampaign(t, "Harbour")
	path := "/api/v1/campaigns/" + c.ID + "/safe_harbour"
	get := func(wantSource string) []byte {
		t.Helper()
		r := e.get(t, path, e.tokens[storage.RoleSupervisor])
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "audio/wav" || r.header.Get("X-Safe-Harbour-Source") != wantSource {
			t.Fatalf("%v: want 200 audio/wav from %s", r, wantSource)
		}
		return r.body
	}
	if !bytes.Equal(get(storage.SafeHarbourBuiltin), media.AbandonPromptWAV()) {
		t.Fatal("a campaign without a message of its own does not download the built-in prompt")
	}

	put := func(body []byte, contentType string, token string) apiResponse {
		t.Helper()
		return e.do(t, request{method: "PUT", path: path, token: token, contentType: contentType, body: bytes.NewReader(body)})
	}
	info := decode[SafeHarbourInfo](t, put(toneWAV(t, 44100, 2, 3), "audio/wav", sales), http.StatusOK)
	if info.Source != "campaign" || info.SampleHz != 8000 || math.Abs(info.Seconds-3) > 0.01 {
		t.Errorf("upload answered %+v, want the campaign's, 8 kHz, 3 s", info)
	}
	stored := get(storage.SafeHarbourCampaign)
	p, err := media.NewPlayer(stored)
	if err != nil || math.Abs(p.Duration().Seconds()-3) > 0.01 {
		t.Fatalf("downloaded message: %v, %v; want a 3 s prompt calls can play", err, p)
	}

	for _, bad := range []struct {
		name, contentType string
		body              []byte
		status            int
		code, mentions    string
	}{
		{"not audio", "audio/wav", []byte("name,phone\nAna,+5511"), 422, "validation_failed", "not a WAV file"},
		{"empty", "audio/wav", nil, 422, "validation_failed", "empty"},
		{"too long", "audio/wav", toneWAV(t, 8000, 1, 31), 422, "validation_failed", "at most 30s"},
		{"a CSV", "text/csv", []byte("a,b\n"), 415, "unsupported_media_type", "audio/wav"},
	} {
		r := put(bad.body, bad.contentType, sales)
		got := wantError(t, r, bad.status, bad.code)
		if !strings.Contains(got.Message, bad.mentions) || bad.status == 422 && got.Fields["audio"] == "" {
			t.Errorf("%s: %+v, want a message naming %q and the field audio", bad.name, got, bad.mentions)
		}
		if !bytes.Equal(get(storage.SafeHarbourCampaign), stored) {
			t.Fatalf("%s: a refused upload changed the message in force", bad.name)
		}
	}
	wantError(t, put(toneWAV(t, 8000, 1, 1), "audio/wav", e.tokens[storage.RoleAgent]), http.StatusForbidden, "forbidden")

	// As a form, the way the sales page sends it: a 16 kHz mono recording.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", "mensagem.wav")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(toneWAV(t, 16000, 1, 2))
	mw.Close()
	info = decode[SafeHarbourInfo](t, put(form.Bytes(), mw.FormDataContentType(), sales), http.StatusOK)
	if math.Abs(info.Seconds-2) > 0.01 {
		t.Errorf("form upload %+v, want 2 s", info)
	}

	if r := e.do(t, request{method: "DELETE", path: path, token: sales}); r.status != http.StatusNoContent {
		t.Fatalf("%v: want 204", r)
	}
	if !bytes.Equal(get(storage.SafeHarbourBuiltin), media.AbandonPromptWAV()) {
		t.Fatal("after DELETE the built-in prompt is not back")
	}
	wantError(t, e.get(t, "/api/v1/campaigns/999999/safe_harbour", sales), http.StatusNotFound, "not_found")
}
