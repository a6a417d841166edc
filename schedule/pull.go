package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
)

// Peer is a Query/Retrieve SCP.
type Peer struct {
	Name, AETitle, Host string
	Port                int
}

// PullConfig configures the pull job handler.
type PullConfig struct {
	// OurAETitle calls the peer and is the C-MOVE destination.
	OurAETitle string
	// Peers by name (jobs.PullArgs.Peer).
	Peers map[string]Peer
	// Modalities queried (default CR, DX).
	Modalities []string
	// BodyParts accepted (series level); empty accepts any. A series with
	// no Body Part Examined is accepted.
	BodyParts []string
	Timeouts  association.Timeouts
	Logger    *slog.Logger
}

// Puller is the jobs.Worker of pull jobs: C-FIND (study root) for recent
// CR/DX studies the node has not received, a series-level C-FIND for the
// body part, then C-MOVE of each study to ourselves. The instances arrive
// through the node's own C-STORE SCP and take the normal path.
type Puller struct {
	st  *models.Store
	cfg PullConfig
	log *slog.Logger
}

// NewPuller returns the pull job handler.
func NewPuller(st *models.Store, cfg PullConfig) (*Puller, error) {
	if cfg.OurAETitle == "" {
		return nil, errors.New("schedule: pull needs our AE title")
	}
	if len(cfg.Modalities) == 0 {
		cfg.Modalities = []string{"CR", "DX"}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Puller{st: st, cfg: cfg, log: cfg.Logger}, nil
}

func elem(t tag.Tag, v string) (*dicom.Element, error) {
	return dicom.NewElement(t, []string{v})
}

func elems(pairs ...any) ([]*dicom.Element, error) {
	var out []*dicom.Element
	for i := 0; i < len(pairs); i += 2 {
		e, err := elem(pairs[i].(tag.Tag), pairs[i+1].(string))
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func str(ds *dicom.Dataset, t tag.Tag) string {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return ""
	}
	v, ok := e.Value.GetValue().([]string)
	if !ok || len(v) == 0 {
		return ""
	}
	return strings.TrimSpace(strings.Join(v, `\`))
}

// PullResult says what one pull did.
type PullResult struct {
	Found, Known, Skipped, Moved, Failed int
}

// Work implements jobs.Worker.
func (p *Puller) Work(ctx context.Context, job *models.Job) error {
	args, err := jobs.DecodeArgs[jobs.PullArgs](job)
	if err != nil {
		return err
	}
	r, err := p.Pull(ctx, args.Peer, args.Since)
	if err != nil {
		return err
	}
	p.log.Info("pull finished", "job_id", job.ID, "peer", args.Peer, "found", r.Found, "known", r.Known,
		"skipped", r.Skipped, "moved", r.Moved, "failed", r.Failed)
	if r.Failed > 0 {
		return fmt.Errorf("pull from %s: %d studies failed to move", args.Peer, r.Failed)
	}
	return nil
}

// Pull queries peer for studies since the given time and retrieves those
// not yet received.
func (p *Puller) Pull(ctx context.Context, peerName string, since time.Time) (PullResult, error) {
	var r PullResult
	peer, ok := p.cfg.Peers[peerName]
	if !ok {
		return r, jobs.Cancel(fmt.Errorf("pull: unknown peer %q", peerName))
	}
	c, err := dicomnode.Dial(ctx, net.JoinHostPort(peer.Host, strconv.Itoa(peer.Port)), dicomnode.DialOpts{
		CallingAETitle: p.cfg.OurAETitle, CalledAETitle: peer.AETitle,
		Contexts: dicomnode.QueryContexts(services.StudyRootFind, services.StudyRootMove), Timeouts: p.cfg.Timeouts, Logger: p.log})
	if err != nil {
		return r, fmt.Errorf("pull: %w", err)
	}
	defer func() {
		if err := c.Release(context.WithoutCancel(ctx)); err != nil {
			c.A.Abort()
		}
	}()
	studies := map[string]bool{}
	var order []string
	for _, mod := range p.cfg.Modalities {
		q, err := elems(tag.QueryRetrieveLevel, "STUDY", tag.StudyInstanceUID, "",
			tag.StudyDate, since.Format("20060102")+"-", tag.ModalitiesInStudy, mod)
		if err != nil {
			return r, jobs.Cancel(err)
		}
		res, st, err := c.Find(ctx, services.StudyRootFind, q)
		if err != nil {
			return r, fmt.Errorf("pull: C-FIND studies: %w", err)
		}
		if st.IsFailure() {
			return r, fmt.Errorf("pull: C-FIND studies: status %s", st)
		}
		for _, ds := range res {
			uid := str(ds, tag.StudyInstanceUID)
			if uid != "" && !studies[uid] {
				studies[uid] = true
				order = append(order, uid)
			}
		}
	}
	r.Found = len(order)
	for _, uid := range order {
		if _, err := p.st.StudyGetByUID(ctx, uid); err == nil {
			r.Known++
			continue
		} else if !errors.Is(err, models.ErrNotFound) {
			return r, err
		}
		if len(p.cfg.BodyParts) > 0 {
			ok, err := p.bodyPartMatches(ctx, c, uid)
			if err != nil {
				return r, err
			}
			if !ok {
				r.Skipped++
				continue
			}
		}
		q, err := elems(tag.QueryRetrieveLevel, "STUDY", tag.StudyInstanceUID, uid)
		if err != nil {
			return r, jobs.Cancel(err)
		}
		mr, err := c.Move(ctx, services.StudyRootMove, p.cfg.OurAETitle, q)
		if err != nil {
			return r, fmt.Errorf("pull: C-MOVE: %w", err)
		}
		if mr.Status.IsFailure() || mr.Failed > 0 {
			p.log.Warn("pull: C-MOVE incomplete", "status", mr.Status.String(), "completed", mr.Completed, "failed", mr.Failed)
			r.Failed++
			continue
		}
		r.Moved++
	}
	return r, nil
}

// bodyPartMatches asks for the study's series and accepts it when one CR or
// DX series has a configured body part or none at all.
func (p *Puller) bodyPartMatches(ctx context.Context, c *services.Client, studyUID string) (bool, error) {
	q, err := elems(tag.QueryRetrieveLevel, "SERIES", tag.StudyInstanceUID, studyUID, tag.SeriesInstanceUID, "",
		tag.Modality, "", tag.BodyPartExamined, "")
	if err != nil {
		return false, jobs.Cancel(err)
	}
	res, st, err := c.Find(ctx, services.StudyRootFind, q)
	if err != nil {
		return false, fmt.Errorf("pull: C-FIND series: %w", err)
	}
	if st.IsFailure() {
		return false, fmt.Errorf("pull: C-FIND series: status %s", st)
	}
	for _, ds := range res {
		if !slices.Contains(p.cfg.Modalities, str(ds, tag.Modality)) {
			continue
		}
		bp := strings.ToUpper(str(ds, tag.BodyPartExamined))
		if bp == "" || slices.Contains(p.cfg.BodyParts, bp) {
			return true, nil
		}
	}
	return false, nil
}
