package campaigns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ImportSink receives an import's rows; package storage implements it. Rows become
// durable only at Flush, so a batch is either whole or absent after a crash.
type ImportSink interface {
	// Add stores a contact, or returns why it was not stored (already in the
	// campaign, on a do-not-call list) and stores nothing.
	Add(ctx context.Context, c Contact) (RejectReason, error)
	// Reject records a row that was not imported.
	Reject(ctx context.Context, r Rejection) error
	// Flush makes everything added and rejected so far durable.
	Flush(ctx context.Context) error
}

// LoadResult counts what an import did.
type LoadResult struct {
	Imported int
	Rejected int
	// AmbiguousZones counts the imported contacts with more than one possible zone.
	AmbiguousZones int
}

// DefaultBatchRows is how many rows an import commits at a time: large enough that
// commits are a small part of the cost, small enough that a crash loses little.
const DefaultBatchRows = 5000

// maxBatchAge bounds how long a batch stays open: an upload that trickles in must not
// keep the database's write lock from the engine.
const maxBatchAge = 500 * time.Millisecond

// chunkRows is how many parsed rows travel together from the parser to the writer,
// so that the hand-over costs little per row.
const chunkRows = 256

// Load reads every row of ir into sink, flushing every batchRows rows. Parsing runs
// in a goroutine of its own so that it overlaps with the sink's writes. Load stops at
// the first error of the sink or the source, or when ctx ends, having flushed nothing
// past the last complete batch; the caller decides what happens to the rest.
func Load(ctx context.Context, ir *ImportReader, sink ImportSink, batchRows int) (LoadResult, error) {
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []ImportRow, 8)
	readErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		readErr <- parseChunks(ctx, ir, chunks)
	}()

	var res LoadResult
	inBatch := 0
	var batchStart time.Time
	flush := func() error {
		inBatch = 0
		return sink.Flush(ctx)
	}
	fail := func(err error) (LoadResult, error) {
		cancel()
		for range chunks { // let the parser see the cancellation and stop
		}
		return res, err
	}
	age := time.NewTicker(maxBatchAge / 2)
	defer age.Stop()
	for {
		var chunk []ImportRow
		var ok bool
		select {
		case chunk, ok = <-chunks:
		case <-age.C:
			if inBatch > 0 && time.Since(batchStart) >= maxBatchAge {
				if err := flush(); err != nil {
					return fail(err)
				}
			}
			continue
		}
		if !ok {
			break
		}
		for _, row := range chunk {
			if inBatch == 0 {
				batchStart = time.Now()
			}
			if err := loadRow(ctx, sink, row, &res); err != nil {
				return fail(err)
			}
			if inBatch++; inBatch >= batchRows || time.Since(batchStart) >= maxBatchAge {
				if err := flush(); err != nil {
					return fail(err)
				}
			}
		}
	}
	if err := <-readErr; err != nil {
		return res, err
	}
	return res, ctx.Err()
}

// parseChunks reads ir to the end, sending rows in chunks.
func parseChunks(ctx context.Context, ir *ImportReader, out chan<- []ImportRow) error {
	chunk := make([]ImportRow, 0, chunkRows)
	send := func() bool {
		select {
		case out <- chunk:
			chunk = make([]ImportRow, 0, chunkRows)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		row, err := ir.Next()
		if errors.Is(err, io.EOF) {
			if len(chunk) > 0 && !send() {
				return ctx.Err()
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read contacts: %w", err)
		}
		if chunk = append(chunk, row); len(chunk) == chunkRows && !send() {
			return ctx.Err()
		}
	}
}

func loadRow(ctx context.Context, sink ImportSink, row ImportRow, res *LoadResult) error {
	rej := row.Reject
	if rej == nil {
		reason, err := sink.Add(ctx, row.Contact)
		if err != nil {
			return fmt.Errorf("line %d: %w", row.Line, err)
		}
		if reason != "" {
			rej = &Rejection{Line: row.Line, Reason: reason, Value: row.Contact.Phone, Cells: row.Cells}
		}
	}
	if rej != nil {
		if err := sink.Reject(ctx, *rej); err != nil {
			return fmt.Errorf("line %d: %w", row.Line, err)
		}
		res.Rejected++
		return nil
	}
	res.Imported++
	if len(row.Contact.Zones) > 1 {
		res.AmbiguousZones++
	}
	return nil
}
