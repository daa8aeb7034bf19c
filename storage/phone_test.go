package storage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fileHolds reports whether any file of the SQLite database at path (the
// database, its WAL and shared memory) contains secret.
func fileHolds(t *testing.T, path, secret string) bool {
	t.Helper()
	files, err := filepath.Glob(path + "*")
	if err != nil || len(files) == 0 {
		t.Fatalf("database files of %s: %v %v", path, files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			return true
		}
	}
	return false
}

// TestPhoneSecretsAreHashed: a phone secret is stored as its digest HA1 for the
// realm it was set in, found for that realm only, cleared with "", and never
// written to the database file.
func TestPhoneSecretsAreHashed(t *testing.T) {
	ctx := context.Background()
	d, path := openTestDB(t)
	u := User{Username: "agent7", Role: RoleAgent}
	if err := d.CreateUser(ctx, tester, &u); err != nil {
		t.Fatal(err)
	}
	const secret = "phone-secret-7f3a9c"
	if err := d.SetPhoneSecret(ctx, tester, u.ID, "callcentre", secret); err != nil {
		t.Fatal(err)
	}
	// RFC 2617's example: HA1 of Mufasa:testrealm@host.com:Circle Of Life.
	if got := PhoneHA1("Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Fatalf("PhoneHA1 = %s, want RFC 2617's 939e7578ed9e3c518a452acee763bce9", got)
	}
	tests := []struct {
		realm  string
		wantOK bool
	}{{"callcentre", true}, {"turbina", false}}
	for _, tc := range tests {
		ha1, id, ok, err := d.PhoneCredentials(ctx, "agent7", tc.realm)
		if err != nil || ok != tc.wantOK {
			t.Fatalf("realm %s: ok %v, %v; want ok %v", tc.realm, ok, err, tc.wantOK)
		}
		if ok && (id != u.ID || ha1 != PhoneHA1("agent7", "callcentre", secret)) {
			t.Errorf("realm %s: HA1 %s of user %d", tc.realm, ha1, id)
		}
	}
	if err := d.SetPhoneSecret(ctx, tester, u.ID+100, "callcentre", secret); err == nil {
		t.Error("set the phone secret of a user that does not exist")
	}
	if fileHolds(t, path, secret) {
		t.Error("the database files hold the phone secret in clear")
	}
	if err := d.SetPhoneSecret(ctx, tester, u.ID, "callcentre", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := d.PhoneCredentials(ctx, "agent7", "callcentre"); ok {
		t.Error("a cleared phone secret still registers")
	}
}

// TestMigrationHashesPhoneSecrets: a database from before migration 8 kept phone
// secrets in clear; migrated, it holds their HA1 for the default realm and no
// trace of the secrets in any of its files.
func TestMigrationHashesPhoneSecrets(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "turbina.db")
	old, err := open(ctx, path, Options{}, 7)
	if err != nil {
		t.Fatal(err)
	}
	// Enough agents to fill several pages, whose free space DROP COLUMN leaves.
	secrets := map[string]string{}
	for i := range 300 {
		secrets[fmt.Sprintf("agent%d", i)] = fmt.Sprintf("secret-%d-5b21e0c4", i)
	}
	for name, secret := range secrets {
		u := User{Username: name, Role: RoleAgent}
		if err := old.CreateUser(ctx, tester, &u); err != nil {
			t.Fatal(err)
		}
		// An earlier secret, replaced: a copy stays in the file's free space.
		for _, v := range []string{"earlier-" + secret, secret} {
			if _, err := old.exec(ctx, "UPDATE users SET phone_secret=? WHERE id=?", v, u.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if !fileHolds(t, path, secrets["agent0"]) {
		t.Fatal("the version 7 database does not hold the secret in clear: the test proves nothing")
	}

	d, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range secrets {
		ha1, _, ok, err := d.PhoneCredentials(ctx, name, "turbina")
		if err != nil || !ok || ha1 != PhoneHA1(name, "turbina", secret) {
			t.Errorf("%s: HA1 %q ok %v %v, want the HA1 of its secret", name, ha1, ok, err)
		}
	}
	if err := d.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for name, secret := range secrets {
		if fileHolds(t, path, secret) {
			t.Errorf("the migrated database files still hold %s's secret in clear", name)
		}
		if fileHolds(t, path, "earlier-"+secret) {
			t.Errorf("the migrated database files still hold %s's earlier secret in clear", name)
		}
	}
}
