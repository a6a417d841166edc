package ingest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// A batch done again in the same run after a failure that followed its
// commit (its outcomes were never reported) reports its instances as
// stored, from the rows that commit made; another reception of the same
// instance is still a duplicate.
func TestWALMaterialiseRetryAfterCommit(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := setupInternal(t, db)
		img := dicomnodetest.Image{SOPInstanceUID: "1.2.6.1.1", StudyInstanceUID: "1.2.6", SeriesInstanceUID: "1.2.6.1"}
		rec := b.record(t, img)
		require.NoError(t, b.h.materialise(ctx, []*walRecord{rec}))
		require.NoError(t, b.h.materialise(ctx, []*walRecord{rec})) // the retry
		require.NoError(t, b.h.materialise(ctx, []*walRecord{b.record(t, img)}))
		require.Equal(t, []string{OutcomeStored, OutcomeStored, OutcomeDuplicate}, b.outcomes())
	})
}
