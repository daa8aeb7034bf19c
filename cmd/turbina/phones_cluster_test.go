package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/turbina-dialer/turbina/internal/baresiptest"
	"github.com/turbina-dialer/turbina/internal/pgtest"
	"github.com/turbina-dialer/turbina/storage"
)

// freeUDPPort is a loopback UDP port free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// registerTo sends one REGISTER of agent1 from conn to the registrar at to,
// with the Authorization line auth ("" for none), and returns the response's
// status line and its WWW-Authenticate value.
func registerTo(t *testing.T, conn *net.UDPConn, to string, cseq int, auth string) (status, challenge string) {
	t.Helper()
	local := conn.LocalAddr().String()
	msg := fmt.Sprintf("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-cluster-%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:agent1@127.0.0.1>;tag=cluster\r\nTo: <sip:agent1@127.0.0.1>\r\nCall-ID: cluster-phone@test\r\nCSeq: %d REGISTER\r\n"+
		"Contact: <sip:agent1@%s>\r\nExpires: 300\r\n%sContent-Length: 0\r\n\r\n", "127.0.0.1", local, cseq, cseq, local, auth)
	addr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP([]byte(msg), addr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("REGISTER to %s: %v", to, err)
		}
		res := string(buf[:n])
		status, _, _ = strings.Cut(res, "\r\n")
		if strings.HasPrefix(status, "SIP/2.0 1") {
			continue // provisional
		}
		for _, line := range strings.Split(res, "\r\n") {
			if v, ok := strings.CutPrefix(line, "WWW-Authenticate: "); ok {
				challenge = v
			}
		}
		return status, challenge
	}
}

// TestServeNodesShareTheirPhones: two `turbina serve` on one PostgreSQL
// database, each with its registrar: a phone challenged by node A answers node
// B and is registered (the nodes' nonce key comes from their shared token key),
// and the binding B took is in the database under B's node ID. Then the agent's
// real phone (baresip) registers to A, and the agent logs in with it through
// B, which serves the agent (no campaign runs): B calls the phone, and the
// phone answers B's call.
func TestServeNodesShareTheirPhones(t *testing.T) {
	pgURL := pgtest.Own(t).Database(t, "")
	tokenKey := strings.Repeat("p", storage.MinTokenKeyLen)
	db, err := storage.Open(context.Background(), pgURL, storage.Options{TokenKey: []byte(tokenKey)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	agent := storage.User{Username: "agent1", Role: storage.RoleAgent}
	if err := db.CreateUser(ctx, storage.Actor{Username: "admin"}, &agent); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPhoneSecret(ctx, storage.Actor{Username: "admin"}, agent.ID, "turbina", "phone-secret-1"); err != nil {
		t.Fatal(err)
	}
	node := func() (registrar, id string, p *proc) {
		registrar = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
		cfg, _ := json.Marshal(map[string]any{"registrar": map[string]any{"listen_addr": registrar}})
		file := filepath.Join(t.TempDir(), "turbina.json")
		if err := os.WriteFile(file, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		p = start(t, []string{"TURBINA_DATABASE_URL=" + pgURL, "TURBINA_ADMIN_TOKEN=" + crashAdmin, "TURBINA_CONFIG=" + file,
			"TURBINA_TOKEN_KEY=" + tokenKey, "TURBINA_DATA_DIR=" + t.TempDir()}, "serve")
		var ready struct{ Node string }
		for deadline := time.Now().Add(15 * time.Second); apiGet(p.url+"/readyz", "", &ready) != nil || ready.Node == ""; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("/readyz not ready with a node within 15 s:\n%s", p.Output())
			}
		}
		return registrar, ready.Node, p
	}
	regA, _, procA := node()
	regB, nodeB, procB := node()
	urlB := procB.url

	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	status, chal := registerTo(t, conn, regA, 1, "")
	if !strings.Contains(status, " 401 ") || chal == "" {
		t.Fatalf("REGISTER to node A: %q (challenge %q), want 401 with a challenge", status, chal)
	}
	c, err := digest.ParseChallenge(chal)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(c, digest.Options{Method: "REGISTER", URI: "sip:127.0.0.1", Username: "agent1", Password: "phone-secret-1", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := registerTo(t, conn, regB, 2, "Authorization: "+cred.String()+"\r\n"); !strings.Contains(status, " 200 ") {
		t.Fatalf("node A's challenge answered to node B: %q, want 200", status)
	}
	rows, err := db.PhoneBindings(ctx, agent.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Node != nodeB || rows[0].Source != conn.LocalAddr().String() {
		t.Fatalf("shared bindings %+v, want the phone's, taken by node %s", rows, nodeB)
	}
	// The agent's phone registers to A (the raw one stays bound to B, older);
	// the agent logs in through B.
	phone := baresiptest.Start(t, baresiptest.Options{Registrar: regA, User: "agent1", Password: "phone-secret-1"})
	phone.WaitUntil(t, 10*time.Second, "register to node A", func() bool {
		rows, err := db.PhoneBindings(ctx, agent.ID, time.Now())
		return err == nil && len(rows) == 2 && rows[0].Node != nodeB && strings.Contains(rows[0].UserAgent, "baresip")
	})
	campaign := clusterCampaign(t, urlB, 1)
	call(t, "POST", urlB+"/api/v1/campaigns/"+campaign+"/agents", crashAdmin, "application/json", strings.NewReader(fmt.Sprintf(`{"user_id":%d}`, agent.ID)), 200, nil)
	var tok struct{ Token string }
	call(t, "POST", fmt.Sprintf("%s/api/v1/users/%d/tokens", urlB, agent.ID), crashAdmin, "application/json", strings.NewReader(`{"name":"desk"}`), 201, &tok)
	call(t, "POST", urlB+"/api/v1/agent/login", tok.Token, "application/json", strings.NewReader(`{"audio":"phone"}`), 200, nil)
	phone.WaitUntil(t, 5*time.Second, "take node B's call", func() bool { return strings.Contains(phone.Output(), "Call established") })
	// The call is B's: A called nobody.
	for name, p := range map[string]*proc{"node A": procA, "node B": procB} {
		if called := strings.Contains(p.Output(), "agent phone answered"); called != (p == procB) {
			t.Errorf("%s logged a phone call: %v, want only node B's:\n%s", name, called, p.Output())
		}
	}
}
