package campaigns

import (
	"context"
	"errors"
	"fmt"
	"io"
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
}

// DefaultBatchRows is how many rows an import commits at a time: large enough that
// commits are a small part of the cost, small enough that a crash loses little.
const DefaultBatchRows = 5000

// Load reads every row of ir into sink, flushing every batchRows rows. It stops at the
// first error of the sink or the source, or when ctx ends, having flushed nothing past
// the last complete batch; the caller decides what happens to the rest.
func Load(ctx context.Context, ir *ImportReader, sink ImportSink, batchRows int) (LoadResult, error) {
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	var res LoadResult
	inBatch := 0
	for {
		row, err := ir.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read contacts: %w", err)
		}
		rej := row.Reject
		if rej == nil {
			reason, err := sink.Add(ctx, row.Contact)
			if err != nil {
				return res, fmt.Errorf("line %d: %w", row.Line, err)
			}
			if reason != "" {
				rej = &Rejection{Line: row.Line, Reason: reason}
			}
		}
		if rej != nil {
			if err := sink.Reject(ctx, *rej); err != nil {
				return res, fmt.Errorf("line %d: %w", row.Line, err)
			}
			res.Rejected++
		} else {
			res.Imported++
		}
		if inBatch++; inBatch >= batchRows {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if err := sink.Flush(ctx); err != nil {
				return res, err
			}
			inBatch = 0
		}
	}
	return res, nil
}
