// Package assembly turns received instances into work: a study is complete
// once no instance has arrived for a quiet time (or when forced); then the
// images to measure are chosen (Select) and one analyze job is enqueued per
// chosen image, in the same transaction that marks the study complete and
// every instance selected or skipped with its reason. A study without any
// measurable image is recorded as such, with the reasons.
//
// Several nodes may assemble on one PostgreSQL: the study's state change
// receiving → complete is a compare-and-set, so each study is assembled by
// one of them, and analyze jobs carry an idempotency key (jobs.AnalyzeKey).
package assembly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// Model identifies the analysis the jobs will run (part of their
// idempotency key).
type Model struct {
	Name, Version, Mode string
}

// Config configures an Assembler.
type Config struct {
	// QuietTime after a study's last instance before it is complete
	// (default 30s).
	QuietTime time.Duration
	// Interval between checks for quiet studies (default QuietTime/4,
	// between 100ms and 5s).
	Interval time.Duration
	Policy   Policy
	Model    Model
	// MaxAttempts of each analyze job (default jobs.DefaultMaxAttempts).
	MaxAttempts int
	// Batch is how many quiet studies one pass takes (default 100).
	Batch int
	// OnAssembled is called after a study is assembled with the number of
	// images selected (metrics, waking the job pool). It must not block.
	OnAssembled func(studyID int64, selected int)
	Logger      *slog.Logger
	// Now is the clock (default store.Now).
	Now func() time.Time
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.QuietTime <= 0 {
		c.QuietTime = 30 * time.Second
	}
	if c.Interval <= 0 {
		c.Interval = min(max(c.QuietTime/4, 100*time.Millisecond), 5*time.Second)
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = jobs.DefaultMaxAttempts
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = store.Now
	}
	return c
}

// Validate checks what WithDefaults cannot fill.
func (c Config) Validate() error {
	if c.Model.Name == "" || c.Model.Version == "" || c.Model.Mode == "" {
		return errors.New("assembly: model name, version and mode are required")
	}
	return nil
}

// Assembler completes quiet studies and enqueues their analyses.
type Assembler struct {
	st  *models.Store
	cfg Config
	log *slog.Logger
}

// New returns an Assembler over st.
func New(st *models.Store, cfg Config) (*Assembler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Assembler{st: st, cfg: cfg, log: cfg.Logger}, nil
}

// Run assembles quiet studies every Interval until ctx ends. Database
// errors are logged and retried at the next tick.
func (a *Assembler) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := a.AssembleQuiet(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("study assembly failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// AssembleQuiet assembles every study whose last instance arrived at least
// QuietTime ago. It returns how many studies it assembled.
func (a *Assembler) AssembleQuiet(ctx context.Context) (int, error) {
	n := 0
	for {
		studies, err := a.st.StudyListQuiet(ctx, a.cfg.Now().Add(-a.cfg.QuietTime), a.cfg.Batch)
		if err != nil {
			return n, fmt.Errorf("assemble: %w", err)
		}
		done := 0
		for _, s := range studies {
			ok, err := a.assemble(ctx, s.ID)
			if err != nil {
				return n, err
			}
			if ok {
				n++
				done++
			}
		}
		if len(studies) < a.cfg.Batch || done == 0 {
			return n, nil
		}
	}
}

// Force assembles a study now, whatever its quiet time. It returns false
// when the study was not receiving (already assembled and no new image).
func (a *Assembler) Force(ctx context.Context, studyInstanceUID string) (bool, error) {
	s, err := a.st.StudyGetByUID(ctx, studyInstanceUID)
	if err != nil {
		return false, fmt.Errorf("force assembly: %w", err)
	}
	return a.assemble(ctx, s.ID)
}

// assemble completes one study if it is still receiving.
func (a *Assembler) assemble(ctx context.Context, studyID int64) (bool, error) {
	var selected, skipped int
	var noImage bool
	err := a.st.InTx(ctx, func(tx *models.Store) error {
		if err := tx.StudySetState(ctx, studyID, models.StudyReceiving, models.StudyComplete, ""); err != nil {
			return err
		}
		study, err := tx.StudyGetByID(ctx, studyID)
		if err != nil {
			return err
		}
		ins, err := tx.InstanceListByStudy(ctx, studyID)
		if err != nil {
			return err
		}
		var series []models.Series
		if err := tx.DB().WithContext(ctx).Where("study_id = ?", studyID).Find(&series).Error; err != nil {
			return fmt.Errorf("list series: %w", err)
		}
		byID := make(map[int64]models.Series, len(series))
		for _, s := range series {
			byID[s.ID] = s
		}
		var cands []Candidate
		everMeasured := false
		for _, in := range ins {
			switch in.State {
			case models.InstanceReceived:
				cands = append(cands, Candidate{Instance: in, Series: byID[in.SeriesID], Study: *study})
			case models.InstanceSelected, models.InstanceAnalyzed, models.InstanceFailed:
				everMeasured = true
			}
		}
		decisions := Select(cands, a.cfg.Policy)
		reasons := map[string]int{}
		for i, d := range decisions {
			in := cands[i].Instance
			if !d.Measure {
				skipped++
				reasons[d.Kind]++
				if err := tx.InstanceSetState(ctx, in.ID, models.InstanceSkipped, d.Reason); err != nil {
					return err
				}
				continue
			}
			selected++
			if err := tx.InstanceSetState(ctx, in.ID, models.InstanceSelected, d.Reason); err != nil {
				return err
			}
			m := a.cfg.Model
			_, err := jobs.Insert(ctx, tx.DB(), jobs.InsertParams{
				Kind: jobs.KindAnalyze,
				Args: jobs.AnalyzeArgs{InstanceID: in.ID, SOPInstanceUID: in.SOPInstanceUID,
					ModelName: m.Name, ModelVersion: m.Version, Mode: m.Mode},
				UniqueKey:   jobs.AnalyzeKey(in.SOPInstanceUID, m.Name, m.Version, m.Mode),
				MaxAttempts: a.cfg.MaxAttempts,
			})
			if err != nil {
				return fmt.Errorf("enqueue analysis: %w", err)
			}
		}
		if selected == 0 && !everMeasured {
			noImage = true
			return tx.StudySetState(ctx, studyID, models.StudyComplete, models.StudyNoMeasurableImage, summarize(reasons, len(ins)))
		}
		return nil
	})
	if errors.Is(err, models.ErrConflict) {
		return false, nil // another node assembled it, or it was not receiving
	}
	if err != nil {
		return false, fmt.Errorf("assemble study %d: %w", studyID, err)
	}
	a.log.Info("study assembled", "study_id", studyID, "selected", selected, "skipped", skipped, "no_measurable_image", noImage)
	if a.cfg.OnAssembled != nil {
		a.cfg.OnAssembled(studyID, selected)
	}
	return true, nil
}

// summarize is the study's no-measurable-image reason: each kind of skip
// with its count, sorted.
func summarize(reasons map[string]int, total int) string {
	if total == 0 {
		return "no images"
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, reasons[k])
	}
	return "no measurable image (" + strings.Join(parts, "; ") + ")"
}
