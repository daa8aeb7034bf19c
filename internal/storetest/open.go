package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// Open opens a fresh SQLite database in the test's temporary directory,
// closed when the test ends.
func Open(t testing.TB) *storage.DB {
	t.Helper()
	store, err := storage.Open(context.Background(), filepath.Join(t.TempDir(), "turbina.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}
