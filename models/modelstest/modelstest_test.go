package modelstest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/models/modelstest"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

func TestFactories(t *testing.T) {
	t.Parallel()
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		s := models.NewStore(db.Gorm)
		in := modelstest.Instance(t, s, nil)
		a, task := modelstest.Analysis(t, s, in, &modelstest.AnalysisOpts{Reasons: []string{result.ReasonC7LowConfidence}})
		require.NotNil(t, task)
		require.Equal(t, models.ReviewPending, task.State)
		got, err := s.AnalysisGetByID(context.Background(), a.ID)
		require.NoError(t, err)
		require.Len(t, got.Landmarks, result.NumLandmarks)
		in2 := modelstest.Instance(t, s, &modelstest.InstanceOpts{StudyInstanceUID: "1.2.3"})
		_, task2 := modelstest.Analysis(t, s, in2, nil)
		require.Nil(t, task2, "not flagged: no task")
		u := modelstest.User(t, s, "qa", models.RoleReviewer)
		require.NotZero(t, u.ID)
	})
}
