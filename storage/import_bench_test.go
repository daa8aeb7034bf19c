package storage

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
)

// importCSV is rows of distinct Brazilian mobile numbers in the four formats
// scripts/gencsv writes for the HTTP import benchmark (make bench-import), with its
// header, delimiter and line ends.
func importCSV(rows int) []byte {
	areaCodes := []int{11, 21, 31, 41, 47, 51, 61, 62, 71, 81, 85, 91, 92, 98}
	names := []string{"Ana Souza", "João Silva", "Maria Oliveira", "José Santos", "Conceição Lima", "Antônio Costa"}
	var b bytes.Buffer
	b.WriteString("nome;telefone;plano;valor\r\n")
	perArea := rows/len(areaCodes) + 1
	for i := range rows {
		area := areaCodes[i/perArea]
		sub := 960000000 + i%perArea
		p1, p2 := sub/10000, sub%10000
		name, plan := names[i%len(names)], i%5
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "%s;(%d) %05d-%04d;Plano %d;\"%d,90\"\r\n", name, area, p1, p2, plan, 79+plan*20)
		case 1:
			fmt.Fprintf(&b, "%s;+55 %d %05d-%04d;Plano %d;\"%d,90\"\r\n", name, area, p1, p2, plan, 79+plan*20)
		case 2:
			fmt.Fprintf(&b, "%s;55%d%09d;Plano %d;\"%d,90\"\r\n", name, area, sub, plan, 79+plan*20)
		default:
			fmt.Fprintf(&b, "%s;0%d %05d-%04d;Plano %d;\"%d,90\"\r\n", name, area, p1, p2, plan, 79+plan*20)
		}
	}
	return b.Bytes()
}

// BenchmarkImport loads 200,000 rows into a new campaign of a fresh database file, as
// the import endpoint does (parse, journey, do-not-call check, insert, batches of
// the default size), without HTTP. Run with -benchtime 3x: one op is seconds.
func BenchmarkImport(b *testing.B) {
	const rows = 200_000
	data := importCSV(rows)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		d, err := Open(ctx, filepath.Join(b.TempDir(), "turbina.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		c := campaigns.Campaign{Name: "bench", CallerID: "+551130000000"}
		c.ApplyDefaults()
		if err := d.CreateCampaign(ctx, tester, &c); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ir, err := campaigns.NewImportReader(bytes.NewReader(data), campaigns.ImportOptions{DefaultCountry: c.DefaultCountry})
		if err != nil {
			b.Fatal(err)
		}
		batch, err := d.BeginImport(ctx, tester, c.ID)
		if err != nil {
			b.Fatal(err)
		}
		_, loadErr := campaigns.Load(ctx, ir, batch, 0)
		im, err := batch.Finish(ctx, loadErr)
		if err != nil || loadErr != nil || im.Imported != rows {
			b.Fatalf("import %+v: %v %v, want %d rows", im, err, loadErr, rows)
		}
		b.StopTimer()
		d.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
